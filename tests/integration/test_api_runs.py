"""The HTTP API as a client sees it, without auth (the development mode): the real
`trimtab api serve` process on a real redis-server, with a real worker and the
simulator. Submitting, reading, listing, cancelling, following events as SSE (and
resuming them), reviews and dead letters, and the errors for bad input."""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.harness import api_server, runtime
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import keys, wire
from trimtab.sdk import Client

pytestmark = pytest.mark.integration

NS = "api"
SIM: dict[str, Any] = {
    "seed": 9,
    "default": {"ttft_seconds": 0.0, "per_token_seconds": 0.0, "output_tokens_mean": 5},
    "models": {"slow": {"name": "slow", "ttft_seconds": 30.0, "output_tokens_mean": 5}},
}
SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 0.5},
    },
    "required": ["answer", "confidence"],
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), SIM) as url:
        yield url


@pytest.fixture
def api(redis_url: str, tmp_path: pathlib.Path) -> Iterator[str]:
    with api_server.running_api(redis_url, tmp_path / "api.log", no_auth=True) as url:
        yield url


@pytest.fixture
async def http(api: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        yield client


async def _publish(sdk: Client, name: str, steps: list[dict[str, Any]]) -> None:
    spec = {"defaultPool": "p", "steps": steps}
    await sdk.publish(NS, name, awf.AgentWorkflowSpec.model_validate(spec))


def _worker(sim: str, redis_url: str, model: str = "sim-small") -> Any:
    spec = runtime.pool_spec(sim, model=model, model__timeoutSeconds=60)
    return runtime.in_process_worker(runtime.worker_settings(NS, "p", spec, redis_url))


async def _sse(http: httpx.AsyncClient, path: str, **headers: str) -> list[tuple[str, str, Any]]:
    """(id, event, data) of every event until the server ends the stream."""
    found: list[tuple[str, str, Any]] = []
    frame: dict[str, str] = {}
    async with http.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if not line:
                if "data" in frame:
                    found.append((frame.get("id", ""), frame["event"], json.loads(frame["data"])))
                frame = {}
                continue
            key, _, value = line.partition(": ")
            frame[key] = value
    return found


async def test_submit_follow_and_read_a_run_over_http(
    sim: str, redis_url: str, sdk: Client, http: httpx.AsyncClient
) -> None:
    await _publish(sdk, "hello", [{"name": "a", "prompt": "hi {{ inputs.who }}"}])
    async with _worker(sim, redis_url):
        made = await http.post(
            f"/v1/namespaces/{NS}/workflows/hello/runs", json={"inputs": {"who": "ada"}}
        )
        assert made.status_code == 201, made.text
        body = made.json()
        assert body["created"] is True
        assert body["run"] == f"{NS}/{body['id']}"
        events = await _sse(http, body["links"]["events"])
    types = [e[1] for e in events]
    assert types[0] == wire.EventType.SUBMITTED
    assert types[-1] == wire.EventType.RUN_DONE
    assert events[-1][2]["status"] == "succeeded"
    run = (await http.get(body["links"]["self"])).json()
    assert run["status"] == "succeeded"
    assert run["inputs"] == {"who": "ada"}
    assert run["steps"]["a"]["state"] == "done"
    assert run["steps"]["a"]["attempt"] == 1
    assert run["tokens"] > 0
    assert run["outputs"]["a"] == run["steps"]["a"]["output"]
    # Resuming after the second event replays only what came after it.
    resumed = await _sse(http, body["links"]["events"], **{"Last-Event-ID": events[1][0]})
    assert [e[0] for e in resumed] == [e[0] for e in events[2:]]


async def test_the_same_idempotency_key_returns_the_same_run(
    sdk: Client, http: httpx.AsyncClient
) -> None:
    await _publish(sdk, "idem", [{"name": "a", "prompt": "hi"}])
    path = f"/v1/namespaces/{NS}/workflows/idem/runs"
    first = await http.post(path, json={}, headers={"Idempotency-Key": "order-7"})
    again = await http.post(path, json={}, headers={"Idempotency-Key": "order-7"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert again.json()["created"] is False


async def test_a_runs_trace_continues_the_traceparent_it_was_submitted_with(
    sdk: Client, http: httpx.AsyncClient
) -> None:
    await _publish(sdk, "traced", [{"name": "a", "prompt": "hi"}])
    path = f"/v1/namespaces/{NS}/workflows/traced/runs"
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    kept = await http.post(path, json={}, headers={"traceparent": caller})
    bad = await http.post(path, json={}, headers={"traceparent": "00-not-a-trace-context"})
    plain = await http.post(path, json={})
    assert {r.status_code for r in (kept, bad, plain)} == {201}, "a bad one starts a new trace"
    field = wire.RunField.TRACEPARENT
    stored = [await sdk.redis.hget(keys.run(NS, r.json()["id"]), field) for r in (kept, bad, plain)]
    assert stored == [caller, None, None]


async def test_without_a_history_database_the_history_is_not_implemented_here(
    http: httpx.AsyncClient,
) -> None:
    for path in ("history/runs", "cost"):
        found = await http.get(f"/v1/namespaces/{NS}/{path}")
        assert found.status_code == 501
        assert "--history-url" in found.json()["error"]


async def test_cancel_over_http_ends_the_run_and_a_second_cancel_is_a_conflict(
    sim: str, redis_url: str, sdk: Client, http: httpx.AsyncClient
) -> None:
    await _publish(sdk, "slow", [{"name": "a", "prompt": "slow", "timeoutSeconds": 60}])
    async with _worker(sim, redis_url, "slow"):
        made = (await http.post(f"/v1/namespaces/{NS}/workflows/slow/runs", json={})).json()
        cancelled = await http.post(made["links"]["cancel"])
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        events = await _sse(http, made["links"]["events"])
    assert [e[1] for e in events][-2:] == [wire.EventType.RUN_CANCELLED, wire.EventType.RUN_DONE]
    again = await http.post(made["links"]["cancel"])
    assert again.status_code == 409
    assert "ended already (cancelled)" in again.json()["error"]
    listed = (await http.get(f"/v1/namespaces/{NS}/runs", params={"status": "cancelled"})).json()
    assert made["id"] in [r["id"] for r in listed["items"]]
    assert {r["status"] for r in listed["items"]} == {"cancelled"}


async def test_listing_pages_with_a_cursor(sdk: Client, http: httpx.AsyncClient) -> None:
    await _publish(sdk, "many", [{"name": "a", "prompt": "hi"}])
    path = f"/v1/namespaces/{NS}/workflows/many/runs"
    ids = [(await http.post(path, json={"inputs": {"i": i}})).json()["id"] for i in range(7)]
    seen: list[str] = []
    params: dict[str, Any] = {"workflow": "many", "limit": 3}
    while True:
        page = (await http.get(f"/v1/namespaces/{NS}/runs", params=params)).json()
        seen += [r["id"] for r in page["items"]]
        if page["nextCursor"] is None:
            break
        params["cursor"] = page["nextCursor"]
    assert seen == ids[::-1]


async def test_review_edit_is_checked_against_the_schema_and_then_continues_the_run(
    sim: str, redis_url: str, sdk: Client, http: httpx.AsyncClient
) -> None:
    output = {"schema": SCHEMA, "minConfidence": {"field": "confidence", "threshold": 0.9}}
    step = {"name": "a", "prompt": "hi", "output": output}
    await _publish(sdk, "reviewed", [step])
    async with _worker(sim, redis_url):
        made = (await http.post(f"/v1/namespaces/{NS}/workflows/reviewed/runs", json={})).json()
        items: list[Any] = []
        for _ in range(200):
            items = (await http.get(f"/v1/namespaces/{NS}/reviews")).json()["items"]
            if any(i["run"] == made["run"] for i in items):
                break
            await asyncio.sleep(0.05)
    entry = next(i for i in items if i["run"] == made["run"])
    waiting = (await http.get(made["links"]["self"])).json()
    assert waiting["status"] == "review"
    assert waiting["reviews"] == [entry["id"]]
    assert waiting["steps"]["a"]["review"] == entry["id"]
    shown = (await http.get(f"/v1/namespaces/{NS}/reviews/{entry['id']}")).json()
    assert shown["outputSchema"] == SCHEMA
    bad = await http.post(f"/v1/namespaces/{NS}/reviews/{entry['id']}/edit",
                          json={"output": {"answer": 7}})  # fmt: skip
    assert bad.status_code == 422
    assert "schema" in bad.json()["error"]
    good = await http.post(f"/v1/namespaces/{NS}/reviews/{entry['id']}/edit",
                           json={"output": {"answer": "edited", "confidence": 0.4}})  # fmt: skip
    assert good.status_code == 200, good.text
    assert good.json()["outcome"] == wire.Reply.OK
    run = (await http.get(made["links"]["self"])).json()
    assert run["status"] == "succeeded"
    assert run["outputs"]["a"] == {"answer": "edited", "confidence": 0.4}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("post", "/v1/namespaces/api/workflows/nosuch/runs", {}, 404, "nosuch"),
        ("post", "/v1/namespaces/api/workflows/hello2/runs", {"inputz": {}}, 422, "inputz"),
        ("post", "/v1/namespaces/api/workflows/hello2/runs", {"deadlineSeconds": 0}, 422,
         "deadlineSeconds"),
        ("get", "/v1/namespaces/api/runs/nosuchrun", None, 404, "not found"),
        ("get", "/v1/namespaces/api/runs?cursor=garbage", None, 400, "cursor"),
        ("get", "/v1/namespaces/api/runs?status=sideways", None, 422, "status"),
        ("get", "/v1/namespaces/api/reviews/not-an-id", None, 400, "NAMESPACE/ID"),
        ("get", "/v1/namespaces/api/reviews/1-0", None, 404, "no review"),
        ("post", "/v1/namespaces/api/deadletters/9-9/retry", None, 404, "no dead-letter"),
        ("get", "/v1/namespaces/api/pools", None, 501, "without a cluster"),
        ("get", "/v1/namespaces/Not_A:Namespace/runs", None, 400, "DNS label"),
    ],
    ids=["unknown-workflow", "unknown-field", "bad-deadline", "unknown-run", "bad-cursor",
         "bad-status", "bad-entry-id", "unknown-review", "unknown-dead-letter", "no-cluster",
         "bad-namespace"],
)  # fmt: skip
async def test_bad_input_gets_a_clear_4xx_never_a_500(
    sdk: Client,
    http: httpx.AsyncClient,
    method: str,
    path: str,
    body: Any,
    status: int,
    says: str,
) -> None:
    await _publish(sdk, "hello2", [{"name": "a", "prompt": "hi"}])
    response = await http.request(method, path, json=body)
    assert response.status_code == status, response.text
    problem = response.json()
    assert problem["status"] == status
    assert says in problem["error"]
    assert "\n" not in problem["error"]


async def test_a_body_over_the_limit_is_refused_with_413(
    sdk: Client, http: httpx.AsyncClient
) -> None:
    await _publish(sdk, "big", [{"name": "a", "prompt": "hi"}])
    huge = {"inputs": {"blob": "x" * (3 * 1024 * 1024)}}
    response = await http.post(f"/v1/namespaces/{NS}/workflows/big/runs", json=huge)
    assert response.status_code == 413
    assert "over" in response.json()["error"]
    just_over = {"inputs": {"blob": "x" * (1024 * 1024 + 10)}}  # within the body limit
    response = await http.post(f"/v1/namespaces/{NS}/workflows/big/runs", json=just_over)
    assert response.status_code == 413
    assert "the limit is" in response.json()["error"]


async def _follow(
    http: httpx.AsyncClient, path: str, started: asyncio.Event
) -> list[tuple[str, str, Any]]:
    """Like _sse, and sets `started` once the stream's first event (its history) came."""
    found: list[tuple[str, str, Any]] = []
    frame: dict[str, str] = {}
    async with http.stream("GET", path) as response:
        async for line in response.aiter_lines():
            if line:
                key, _, value = line.partition(": ")
                frame[key] = value
                continue
            if "data" in frame:
                found.append((frame.get("id", ""), frame["event"], json.loads(frame["data"])))
                started.set()
            frame = {}
    return found


async def test_waiting_followers_hold_no_redis_connection_each(
    sim: str, redis_url: str, sdk: Client, http: httpx.AsyncClient
) -> None:
    """60 streams waiting at once on one server. Each is opened once the one before it
    has read its history, so no two opens overlap: were each stream to block on a Redis
    connection of its own, 60 would be held; the hub holds one."""
    await _publish(sdk, "fan", [{"name": "a", "prompt": "hi"}])
    path = f"/v1/namespaces/{NS}/workflows/fan/runs"
    made = [(await http.post(path, json={})).json() for _ in range(5)]
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=str(http.base_url), timeout=60, limits=limits) as many:
        await sdk.redis.ping()
        before = len(await sdk.redis.client_list())
        followers = []
        for m in made * 12:
            started = asyncio.Event()
            followers.append(asyncio.create_task(_follow(many, m["links"]["events"], started)))
            await asyncio.wait_for(started.wait(), 30)
        during = len(await sdk.redis.client_list())
        async with _worker(sim, redis_url):
            seen = await asyncio.wait_for(asyncio.gather(*followers), 60)
    assert len(seen) == 60
    assert all(s[-1][1] == wire.EventType.RUN_DONE for s in seen)
    assert all(s[-1][2]["status"] == "succeeded" for s in seen)
    assert during - before < 10, (before, during)


async def test_a_caller_past_its_rate_limit_gets_429_with_retry_after(
    redis_url: str, tmp_path: pathlib.Path
) -> None:
    limited = ("--requests-per-second", "0.5", "--burst", "2")
    with api_server.running_api(redis_url, tmp_path / "limited.log", no_auth=True,
                                extra=limited) as url:  # fmt: skip
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            codes = [(await http.get(f"/v1/namespaces/{NS}/runs")).status_code for _ in range(3)]
            refused = await http.get(f"/v1/namespaces/{NS}/runs")
    assert codes == [200, 200, 429]
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert "too many requests" in refused.json()["error"]


async def test_inputs_outside_the_workflows_schema_are_refused_and_no_run_is_made(
    sdk: Client, http: httpx.AsyncClient
) -> None:
    schema = {"type": "object", "required": ["message"],
              "properties": {"message": {"type": "string", "maxLength": 20}}}  # fmt: skip
    spec = {"defaultPool": "p", "inputs": schema, "steps": [{"name": "a", "prompt": "hi"}]}
    await sdk.publish(NS, "typed", awf.AgentWorkflowSpec.model_validate(spec))
    path = f"/v1/namespaces/{NS}/workflows/typed/runs"
    missing = await http.post(path, json={"inputs": {}})
    wrong = await http.post(path, json={"inputs": {"message": 7}})
    assert (missing.status_code, wrong.status_code) == (422, 422)
    assert "'message' is a required property" in missing.json()["error"]
    assert "inputs['message']" in wrong.json()["error"]
    assert "7 is not of type 'string'" in wrong.json()["error"]
    listed = await http.get(f"/v1/namespaces/{NS}/runs", params={"workflow": "typed"})
    assert listed.json()["items"] == []
    good = await http.post(path, json={"inputs": {"message": "where is my order"}})
    assert good.status_code == 201
