"""No acknowledged step is lost when Redis restarts mid-load: with AOF `everysec` and a
clean restart (SIGTERM flushes the AOF), and with AOF `always` and a crash (SIGKILL),
every submitted run still completes, each step exactly once."""

from __future__ import annotations

import asyncio
import pathlib
import signal
from collections.abc import Iterator

import pytest

from tests.harness import redis_server, runtime
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import connection, keys, runs
from trimtab.sdk import Client

NS, RUNS = "dur", 200


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Slow enough that checking 200 runs on a busy machine cannot outlast the load:
    # the restart must land while steps are still under way.
    config = {"seed": 3, "tool_delay_seconds": 0.2}
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), config) as url:
        yield url


def _workflow(sim: str) -> awf.AgentWorkflowSpec:
    echo = sim.removesuffix("/v1") + "/tools/echo"
    return awf.AgentWorkflowSpec.model_validate(
        {
            "defaultPool": "p",
            "steps": [
                {
                    "name": "a",
                    "kind": "tool",
                    "tool": {"url": echo, "body": '{"i": {{ inputs.i }}}'},
                },
                {
                    "name": "b",
                    "kind": "tool",
                    "dependsOn": ["a"],
                    "tool": {"url": echo, "body": '{"a": {{ a.received }}}'},
                },
            ],
        }
    )


async def _statuses(client: Client, refs: list[str]) -> list[str]:
    """Every run's status; 'unknown' while Redis is away."""
    try:
        states = [await runs.read(client.redis, NS, ref.split("/")[1]) for ref in refs]
    except connection.UNAVAILABLE:
        return ["unknown"] * len(refs)
    return [s.status if s else "missing" for s in states]


async def _wait_until(client: Client, refs: list[str], *, done: int, within: float) -> None:
    for _ in range(int(within / 0.1)):
        if (await _statuses(client, refs)).count("succeeded") >= done:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"fewer than {done} runs succeeded: {await _statuses(client, refs)}")


@pytest.mark.parametrize(
    ("appendfsync", "stop_signal"),
    [
        pytest.param("everysec", signal.SIGTERM, id="everysec-clean-restart"),
        pytest.param("always", signal.SIGKILL, id="always-crash"),
    ],
)
async def test_redis_restart_mid_load_loses_no_acknowledged_step(
    sim: str, tmp_path: pathlib.Path, appendfsync: str, stop_signal: int
) -> None:
    server = redis_server.RestartableRedis(tmp_path, appendfsync=appendfsync)
    server.start()
    client = Client(server.url)
    spec = runtime.pool_spec(sim, queue__visibilityTimeoutSeconds=1, worker__concurrency=4)
    cfg = runtime.worker_settings(NS, "p", spec, server.url)
    try:
        await client.publish(NS, "two", _workflow(sim))
        async with runtime.in_process_worker(cfg), runtime.in_process_worker(cfg):
            refs = [await client.submit(NS, "two", {"i": i}) for i in range(RUNS)]
            await _wait_until(client, refs, done=RUNS // 4, within=30)
            assert (await _statuses(client, refs)).count("succeeded") < RUNS, "restart too late"
            server.stop(stop_signal)
            await asyncio.sleep(0.5)
            server.start()
            await _wait_until(client, refs, done=RUNS, within=60)
        for ref in refs:
            events = [e async for e in client.events(ref)]
            done = [e["step"] for e in events if e["type"] == "step_done"]
            assert sorted(done) == ["a", "b"], (ref, events)
        dead = await client.redis.xlen(keys.dead_letter(NS))
        assert dead == 0
    finally:
        await client.aclose()
        server.stop(signal.SIGTERM)
