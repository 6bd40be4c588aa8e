"""A namespace's own Redis user (trimtab.queue.acl) on a real redis-server: a worker and
an app's SDK client logged in as it run that namespace's workflows end to end (fan-out,
retries, dead letters, idempotency, deadlines), and reach nothing of another namespace
nor anything beyond keys."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
import redis.exceptions
import yaml

from tests.harness import runtime
from trimtab import cli
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import acl, keys
from trimtab.sdk import Client

NS, OTHER = "acl-a", "acl-b"
PASSWORD = "namespace-a-password"
SIM = {
    "seed": 3,
    "tool_delay_seconds": 0.0,
    "default": {"ttft_seconds": 0.0, "per_token_seconds": 0.0, "output_tokens_mean": 5},
    "models": {"broken": {"name": "broken", "ttft_seconds": 0.0, "rate_500": 1.0}},
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), SIM) as url:
        yield url


def _as_user(redis_url: str, user: str, password: str) -> str:
    parts = urllib.parse.urlsplit(redis_url)
    return parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port}").geturl()


@pytest.fixture(autouse=True)
def _no_namespace_user(redis_url: str) -> Iterator[None]:
    """Users outlive FLUSHALL: each test starts, and leaves the server, without one."""
    server = redis.Redis.from_url(redis_url)
    server.acl_deluser(acl.user(NS))
    yield
    server.acl_deluser(acl.user(NS))
    server.close()


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Client]:
    """The operator's side: the default user, which publishes workflows and grants."""
    client = Client(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def user_url(redis_url: str, admin: Client) -> str:
    name = await acl.grant(admin.redis, NS, PASSWORD)
    return _as_user(redis_url, name, PASSWORD)


def _tool(name: str, url: str, body: str, *deps: str) -> dict[str, Any]:
    return {"name": name, "kind": "tool", "tool": {"url": url, "body": body}, "dependsOn": [*deps]}


async def _publish(admin: Client, namespace: str, name: str, spec: dict[str, Any]) -> None:
    await admin.publish(namespace, name, awf.AgentWorkflowSpec.model_validate(spec))


async def test_a_namespace_user_runs_its_namespaces_workflows(
    sim: str, admin: Client, user_url: str
) -> None:
    echo = sim.removesuffix("/v1") + "/tools/echo"
    fan = {
        "defaultPool": "p",
        "deadlineSeconds": 60,
        "steps": [
            _tool("a", echo, '{"x": "{{ inputs.x }}"}'),
            {"name": "b", "prompt": "Say {{ a.received.x }}", "dependsOn": ["a"]},
            _tool("c", echo, '{"from_a": "{{ a.received.x }}"}', "a"),
            _tool("d", echo, '{"c": {{ c.received }}}', "b", "c"),
        ],
    }
    retry = {"maxAttempts": 2, "backoff": {"initialSeconds": 0.05, "maxSeconds": 0.1}}
    doomed = {"defaultPool": "q", "steps": [{"name": "call", "prompt": "hi", "retry": retry}]}
    await _publish(admin, NS, "fan", fan)
    await _publish(admin, NS, "doomed", doomed)
    app = Client(user_url)
    pool_p = runtime.worker_settings(NS, "p", runtime.pool_spec(sim), user_url)
    pool_q = runtime.worker_settings(NS, "q", runtime.pool_spec(sim, model="broken"), user_url)
    try:
        async with runtime.in_process_worker(pool_p), runtime.in_process_worker(pool_q):
            run = await app.submit(NS, "fan", {"x": "hi"}, idempotency_key="k1")
            assert await app.submit(NS, "fan", {"x": "hi"}, idempotency_key="k1") == run
            failing = await app.submit(NS, "doomed", {})
            result, failed = await asyncio.gather(
                app.result(run, timeout=30), app.result(failing, timeout=30)
            )
    finally:
        await app.aclose()
    assert result.status == "succeeded", result.errors
    assert result.outputs["d"]["received"] == {"c": {"from_a": "hi"}}
    assert failed.status == "failed"
    assert "attempt 2 of 2" in failed.errors["call"]
    assert await admin.redis.xlen(keys.dead_letter(NS)) == 1


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(("GET", keys.run(OTHER, "r1")), id="another-namespaces-key"),
        pytest.param(("XADD", keys.pool_stream(OTHER, "p"), "*", "a", "1"), id="its-stream"),
        pytest.param(("EVAL", f"return redis.call('GET', '{keys.run(OTHER, 'r1')}')", 0), id="lua"),
        pytest.param(("SMEMBERS", keys.workflow_index()), id="the-shared-index"),
        pytest.param(("SCAN", 0), id="listing-keys"),
        pytest.param(("FLUSHALL",), id="flushall"),
        pytest.param(("CONFIG", "SET", "maxmemory", "1"), id="config"),
        pytest.param(("SCRIPT", "FLUSH"), id="the-script-cache"),
        pytest.param(("PUBLISH", "x", "y"), id="pubsub"),
        pytest.param(("CLIENT", "TRACKING", "ON", "BCAST"), id="key-tracking"),
    ],
)
async def test_a_namespace_user_reaches_nothing_else(
    admin: Client, user_url: str, command: tuple[Any, ...]
) -> None:
    await admin.redis.set(keys.run(OTHER, "r1"), "theirs")
    client = aioredis.Redis.from_url(user_url, decode_responses=True)
    try:
        with pytest.raises(redis.exceptions.ResponseError, match=r"(?i)permission|can't access"):
            await client.execute_command(*command)
    finally:
        await client.aclose()
    assert await admin.redis.get(keys.run(OTHER, "r1")) == "theirs"


async def test_a_namespace_user_may_name_its_database(admin: Client, user_url: str) -> None:
    client = aioredis.Redis.from_url(user_url.replace("/0", "/1"), decode_responses=True)
    try:
        assert await client.set(keys.run(NS, "r1"), "in db 1")
    finally:
        await client.aclose()
    assert await admin.redis.get(keys.run(NS, "r1")) is None  # db 0 untouched


async def test_granting_again_replaces_the_password(admin: Client, redis_url: str) -> None:
    await acl.grant(admin.redis, NS, "first")
    await acl.grant(admin.redis, NS, "second")
    stale = aioredis.Redis.from_url(_as_user(redis_url, acl.user(NS), "first"))
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            await stale.ping()
    finally:
        await stale.aclose()


def test_the_cli_grants_a_user_and_prints_its_secret(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["redis", "grant", NS, "--redis-url", redis_url]) == 0
    out = capsys.readouterr()
    secret = yaml.safe_load(out.out)
    assert (secret["kind"], secret["metadata"]) == (
        "Secret",
        {"name": "trimtab-redis-user", "namespace": NS},
    )
    data = secret["stringData"]
    assert data["username"] == acl.user(NS)
    assert f"only {acl.key_pattern('acl-a')}" in out.err
    logged_in = redis.Redis.from_url(
        redis_url, username=data["username"], password=data["password"]
    )
    assert logged_in.set(keys.run(NS, "r1"), "x")
    with pytest.raises(redis.exceptions.NoPermissionError):
        logged_in.get(keys.run(OTHER, "r1"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["Team_A"], "is not a Kubernetes namespace name", id="bad-namespace"),
        pytest.param([NS, "--password-file", "/nonexistent"], "cannot read", id="no-file"),
    ],
)
def test_the_cli_refuses_bad_input_in_one_line(
    redis_url: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert cli.main(["redis", "grant", *argv, "--redis-url", redis_url]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert acl.user(NS) not in redis.Redis.from_url(redis_url, decode_responses=True).acl_users()
