"""Tool steps on a real worker, redis-server and HTTP servers: run inputs stay values in
the request, a missing header Secret fails only its step and is reported to the
operator, and an exception no step error expected fails the step once, not forever."""

from __future__ import annotations

import dataclasses
import pathlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import web

from tests.harness import runtime
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import keys, workflows
from trimtab.sdk import Client
from trimtab.sdk.client import InputsTooLargeError

pytestmark = pytest.mark.integration

NS = "tools"
INJECTION = 'c1", "limit": 100000, "customerId": "victim'


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = {"seed": 3, "tool_delay_seconds": 0.0}
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), config) as url:
        yield url.removesuffix("/v1")


@pytest.fixture
async def nested_json() -> AsyncIterator[str]:
    """A real HTTP server whose every reply is JSON nested deeper than Python parses."""

    async def reply(_: web.Request) -> web.Response:
        deep = "[" * 200_000 + "]" * 200_000
        return web.Response(text=deep, content_type="application/json")

    async def huge(request: web.Request) -> web.StreamResponse:
        # Streamed without a length, so only counting what arrives can stop it.
        out = web.StreamResponse()
        await out.prepare(request)
        for _ in range(12):
            await out.write(b"x" * 512 * 1024)
        await out.write_eof()
        return out

    async def gzipped(_: web.Request) -> web.Response:
        out = web.json_response({"answer": "x" * 2000})
        out.enable_compression()  # gzip, as most real APIs answer when asked
        return out

    async def headers(request: web.Request) -> web.Response:
        return web.json_response(dict(request.headers))

    app = web.Application()
    app.router.add_route("*", "/headers", headers)
    app.router.add_route("*", "/huge", huge)
    app.router.add_route("*", "/gzip", gzipped)
    app.router.add_route("*", "/{tail:.*}", reply)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def _worker(sim: str, redis_url: str, secrets_dir: pathlib.Path | None = None) -> Any:
    cfg = runtime.worker_settings(NS, "p", runtime.pool_spec(sim + "/v1"), redis_url)
    if secrets_dir is not None:
        cfg = dataclasses.replace(cfg, tool_secrets_dir=secrets_dir)
    return runtime.in_process_worker(cfg)


async def _publish(sdk: Client, name: str, *steps: dict[str, Any]) -> None:
    spec = {"defaultPool": "p", "steps": list(steps)}
    await sdk.publish(NS, name, awf.AgentWorkflowSpec.model_validate(spec))


async def test_a_run_input_cannot_rewrite_a_json_body_or_leave_the_url_path(
    sim: str, redis_url: str, sdk: Client
) -> None:
    body = '{"customerId": "{{ inputs.id }}", "limit": 20, "tags": {{ inputs.tags }}}'
    url = sim + "/tools/{{ inputs.tool }}"
    await _publish(sdk, "inject", {"name": "a", "kind": "tool", "tool": {"url": url, "body": body}})
    async with _worker(sim, redis_url):
        ok = await sdk.submit(NS, "inject", {"id": INJECTION, "tags": ["x", 1], "tool": "echo"})
        result = await sdk.result(ok, timeout=20)
        # A value is encoded whole: "../x" stays one path segment, so the tool's name
        # is literally "../x" and the simulator's /tools route is the one reached.
        escaped = await sdk.result(
            await sdk.submit(NS, "inject", {"id": "", "tags": [], "tool": "../healthz"}),
            timeout=20,
        )
    assert result.status == "succeeded"
    assert result.outputs["a"]["received"] == {
        "customerId": INJECTION,
        "limit": 20,
        "tags": ["x", 1],
    }
    assert escaped.status == "succeeded"
    assert escaped.outputs["a"]["tool"] == "../healthz"


async def test_a_missing_header_secret_fails_its_step_is_reported_and_clears_once_created(
    sim: str, redis_url: str, sdk: Client, tmp_path: pathlib.Path
) -> None:
    header = {"name": "Authorization", "valueFromSecret": {"name": "crm", "key": "token"}}
    step = {
        "name": "a",
        "kind": "tool",
        "tool": {"url": sim + "/tools/echo", "body": "{}", "headers": [header]},
        "retry": {"maxAttempts": 3},
    }
    await _publish(sdk, "secretive", step)
    async with _worker(sim, redis_url, tmp_path):
        failed = await sdk.result(await sdk.submit(NS, "secretive", {}), timeout=20)
        noted = await workflows.missing_secrets(sdk.redis, NS, "secretive", now=time.time())
        # The kubelet projects the Secret once it exists; the same worker uses it.
        (tmp_path / "crm").mkdir()
        (tmp_path / "crm" / "token").write_text("Bearer t")
        worked = await sdk.result(await sdk.submit(NS, "secretive", {}), timeout=20)
    assert failed.status == "failed"
    assert "Secret crm has no key token" in failed.errors["a"]
    assert "attempt 1 of 3" in failed.errors["a"]  # not retried: it would fail the same way
    assert noted == [("crm", "token")]
    assert worked.status == "succeeded"
    assert await workflows.missing_secrets(sdk.redis, NS, "secretive", now=time.time()) == []


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        pytest.param("/deep", "unexpected RecursionError", id="unexpected-exception"),
        pytest.param("/huge", "too_large: the reply is at least", id="reply-over-the-limit"),
    ],
)
async def test_a_failure_no_retry_can_mend_fails_the_step_once_with_its_reason(
    sim: str, redis_url: str, sdk: Client, nested_json: str, path: str, reason: str
) -> None:
    """A reply nested too deep to parse (an exception no step error expected) and a
    reply over the limit (never read whole) both fail the step at its first attempt."""
    name = path.strip("/")
    step = {"name": "a", "kind": "tool", "tool": {"url": nested_json + path, "body": "{}"}}
    await _publish(sdk, name, {**step, "retry": {"maxAttempts": 3}})
    async with _worker(sim, redis_url):
        result = await sdk.result(await sdk.submit(NS, name, {}), timeout=20)
    assert result.status == "failed"
    assert reason in result.errors["a"]
    assert "attempt 1 of 3" in result.errors["a"]


async def test_inputs_over_the_limit_are_refused_before_anything_is_written(
    sdk: Client, redis_url: str
) -> None:
    await _publish(sdk, "big-in", {"name": "a", "prompt": "{{ inputs.doc }}"})
    with pytest.raises(InputsTooLargeError, match="the limit is 1048576"):
        await sdk.submit(NS, "big-in", {"doc": "x" * (1024 * 1024)})
    assert await sdk.redis.xlen(keys.pool_stream(NS, "p")) == 0


async def test_a_compressed_reply_is_read_once_and_decoded(
    sim: str, redis_url: str, sdk: Client, nested_json: str
) -> None:
    step = {"name": "a", "kind": "tool", "tool": {"url": nested_json + "/gzip", "body": "{}"}}
    await _publish(sdk, "gzip", step)
    async with _worker(sim, redis_url):
        result = await sdk.result(await sdk.submit(NS, "gzip", {}), timeout=20)
    assert result.status == "succeeded", result.errors
    assert result.outputs["a"] == {"answer": "x" * 2000}


async def test_each_tool_call_carries_an_idempotency_key_of_its_attempt(
    sim: str, nested_json: str, redis_url: str, sdk: Client
) -> None:
    url = nested_json + "/headers"
    own = {"name": "Idempotency-Key", "value": "the-tools-own"}
    await _publish(
        sdk,
        "keyed",
        {"name": "a", "kind": "tool", "tool": {"url": url, "body": "{}"}},
        {"name": "b", "kind": "tool", "tool": {"url": url, "body": "{}", "headers": [own]}},
    )
    async with _worker(sim, redis_url):
        result = await sdk.result(await sdk.submit(NS, "keyed", {}), timeout=20)
    assert result.status == "succeeded", result.errors
    assert result.outputs["a"]["Idempotency-Key"] == f"{result.run}/a/1"
    assert result.outputs["b"]["Idempotency-Key"] == "the-tools-own"  # the workflow's wins
