"""The SDK's HTTP transport against the real `trimtab api serve` (development mode) on
a real redis-server, with a worker and the simulator: `Client("http://...")` makes
the Redis client's calls and returns the same records, and the server's errors come
back as the same exceptions."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.harness import api_server, runtime
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import runindex, wire
from trimtab.sdk import Client, http_client, operations

pytestmark = pytest.mark.integration

NS = "api-sdk"
SIM: dict[str, Any] = {"seed": 2, "default": {"ttft_seconds": 0.0, "per_token_seconds": 0.0}}
SCHEMA = {
    "type": "object",
    "properties": {"confidence": {"type": "number", "minimum": 0, "maximum": 0.5}},
    "required": ["confidence"],
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), SIM) as url:
        yield url


@pytest.fixture
async def remote(redis_url: str, tmp_path: pathlib.Path) -> AsyncIterator[Client]:
    with api_server.running_api(redis_url, tmp_path / "api.log", no_auth=True) as url:
        client = Client(url)
        try:
            yield client
        finally:
            await client.aclose()


def _worker(sim: str, redis_url: str) -> Any:
    spec = runtime.pool_spec(sim)
    return runtime.in_process_worker(runtime.worker_settings(NS, "p", spec, redis_url))


async def test_an_http_url_gives_the_http_transport_with_the_same_calls(
    sim: str, redis_url: str, sdk: Client, remote: Client
) -> None:
    assert isinstance(remote, http_client.HttpClient)
    assert not isinstance(sdk, http_client.HttpClient)
    spec = {"defaultPool": "p", "steps": [{"name": "a", "prompt": "hi {{ inputs.x }}"}]}
    await sdk.publish(NS, "wf", awf.AgentWorkflowSpec.model_validate(spec))
    async with _worker(sim, redis_url):
        run = await remote.submit(NS, "wf", {"x": 1}, idempotency_key="k1")
        assert await remote.submit(NS, "wf", {"x": 1}, idempotency_key="k1") == run
        types = [e["type"] async for e in remote.events(run)]
        result = await remote.result(run, timeout=20)
    assert types[0] == wire.EventType.SUBMITTED
    assert types[-1] == wire.EventType.RUN_DONE
    direct = await sdk.get(run)
    over_http = await remote.get(run)
    assert over_http.status is wire.RunStatus.SUCCEEDED
    assert result.outputs == direct.outputs()
    assert over_http.steps == direct.steps
    assert (over_http.tokens, over_http.cost) == (direct.tokens, direct.cost)
    page = await remote.list_runs(NS, where=runindex.RunFilter(workflow="wf"))
    assert [r.run_id for r in page.runs] == [direct.run_id]


async def test_cancel_and_review_over_http(
    sim: str, redis_url: str, sdk: Client, remote: Client
) -> None:
    waiting = {"defaultPool": "nobody", "steps": [{"name": "a", "prompt": "hi"}]}
    await sdk.publish(NS, "waits", awf.AgentWorkflowSpec.model_validate(waiting))
    run = await remote.submit(NS, "waits", {})
    await remote.cancel(run)
    assert (await remote.get(run)).status is wire.RunStatus.CANCELLED
    with pytest.raises(operations.RunEndedError, match="ended already"):
        await remote.cancel(run)
    output = {"schema": SCHEMA, "minConfidence": {"field": "confidence", "threshold": 0.9}}
    reviewed = {"defaultPool": "p", "steps": [{"name": "a", "prompt": "hi", "output": output}]}
    await sdk.publish(NS, "reviewed", awf.AgentWorkflowSpec.model_validate(reviewed))
    async with _worker(sim, redis_url):
        run = await remote.submit(NS, "reviewed", {"q": 1})
        items = []
        for _ in range(300):
            items = await remote.reviews(NS)
            if items:
                break
            await asyncio.sleep(0.05)
    [item] = items
    assert item == (await sdk.reviews(NS))[0]  # the same record either way
    details = await remote.review_details(f"{NS}/{item.id}")
    assert details["inputs"] == {"q": 1}
    with pytest.raises(ValueError, match="schema"):
        await remote.edit(f"{NS}/{item.id}", {"confidence": 7})
    assert await remote.edit(f"{NS}/{item.id}", {"confidence": 0.1}) is wire.Reply.OK
    assert (await remote.result(run, timeout=20)).outputs == {"a": {"confidence": 0.1}}


async def test_errors_come_back_as_the_redis_clients_exceptions(remote: Client) -> None:
    with pytest.raises(LookupError, match="not found"):
        await remote.get(f"{NS}/nosuchrun")
    with pytest.raises(LookupError):
        await remote.submit(NS, "no-such-workflow", {})
    with pytest.raises(LookupError, match="no review"):
        await remote.approve(f"{NS}/1-0")
    with pytest.raises(http_client.HttpTransportError, match="needs Redis"):
        await remote.publish(NS, "x", None)
