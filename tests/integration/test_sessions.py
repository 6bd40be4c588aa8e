"""Sessions: a conversation that outlives one run, on a real redis-server, the real
simulator and an in-process worker. A remembering step sees its session's earlier
turns, most recent first within its memory.maxTokens; a succeeded run adds its turns."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import runtime
from trimtab import cli
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import connection, sessions
from trimtab.sdk import Client

NS = "sessions"
SIM_CONFIG: dict[str, Any] = {
    "seed": 9,
    "default": {"ttft_seconds": 0.0, "per_token_seconds": 0.0, "output_tokens_mean": 8},
    "models": {"broken": {"name": "broken", "ttft_seconds": 0.0, "rate_500": 1.0}},
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), SIM_CONFIG) as url:
        yield url


def _workflow(max_tokens: int = 1000) -> awf.AgentWorkflowSpec:
    step = {
        "name": "chat",
        "prompt": "Q: {{ inputs.q }}",
        "memory": {"session": True, "maxTokens": max_tokens},
        "retry": {"maxAttempts": 1},
    }
    return awf.AgentWorkflowSpec.model_validate({"defaultPool": "p", "steps": [step]})


def _last_prompt(sim: str, model: str = "sim-small") -> str:
    stats = httpx.get(sim.removesuffix("/v1") + "/stats").json()
    return str(stats["models"][model]["last_prompt"])


async def _ask(sdk: Client, q: str, session: str | None, workflow: str = "chat") -> Any:
    run = await sdk.submit(NS, workflow, {"q": q}, session=session)
    return await sdk.result(run, timeout=20)


async def test_a_sessions_next_run_sees_its_earlier_turns_and_adds_its_own(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await sdk.publish(NS, "chat", _workflow())
    cfg = runtime.worker_settings(NS, "p", runtime.pool_spec(sim), redis_url)
    async with runtime.in_process_worker(cfg):
        first = await _ask(sdk, "where is order 17?", "s-1")
        assert "where is order 17?" in _last_prompt(sim)
        assert await sdk.session(NS, "s-1") == [
            {"role": "user", "content": "Q: where is order 17?"},
            {"role": "assistant", "content": first.outputs["chat"]},
        ]
        second = await _ask(sdk, "and order 18?", "s-1")
        seen = _last_prompt(sim)
        assert "Q: where is order 17?" in seen
        assert first.outputs["chat"] in seen
        assert seen.index("order 17") < seen.index("order 18")
        await _ask(sdk, "a question of another conversation", "s-2")
        assert "order 17" not in _last_prompt(sim)
        await _ask(sdk, "no conversation at all", None)
        assert "order 17" not in _last_prompt(sim)
    turns = await sdk.session(NS, "s-1")
    assert [m["content"] for m in turns][2:] == ["Q: and order 18?", second.outputs["chat"]]
    assert await sdk.session(NS, "never-used") == []


async def test_a_step_sees_only_the_latest_turns_that_fit_its_max_tokens(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await sdk.publish(NS, "short", _workflow(max_tokens=30))
    cfg = runtime.worker_settings(NS, "p", runtime.pool_spec(sim), redis_url)
    async with runtime.in_process_worker(cfg):
        for q in ("alpha question", "bravo question", "charlie question"):
            await _ask(sdk, q, "s-short", "short")
    seen = _last_prompt(sim)
    assert "charlie question" in seen
    assert "bravo question" in seen  # the latest turn fits 30 tokens
    assert "alpha question" not in seen  # the oldest does not, and is left out whole
    assert len(await sdk.session(NS, "s-short")) == 6  # the session itself keeps all


async def test_a_failed_run_adds_nothing_to_its_session(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await sdk.publish(NS, "chat", _workflow())
    cfg = runtime.worker_settings(NS, "p", runtime.pool_spec(sim, model="broken"), redis_url)
    async with runtime.in_process_worker(cfg):
        result = await _ask(sdk, "will fail", "s-fail")
    assert result.status == "failed"
    assert await sdk.session(NS, "s-fail") == []


async def test_the_cli_shows_and_deletes_a_session(
    sim: str, redis_url: str, sdk: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    await sdk.publish(NS, "chat", _workflow())
    cfg = runtime.worker_settings(NS, "p", runtime.pool_spec(sim), redis_url)
    async with runtime.in_process_worker(cfg):
        await _ask(sdk, "hello there", "s-cli")
    argv = ["--redis-url", redis_url]
    assert await asyncio.to_thread(cli.main, ["sessions", "get", f"{NS}/s-cli", *argv]) == 0
    assert "user      Q: hello there" in capsys.readouterr().out
    assert await asyncio.to_thread(cli.main, ["sessions", "delete", f"{NS}/s-cli", *argv]) == 0
    assert "deleted" in capsys.readouterr().out
    assert await sdk.session(NS, "s-cli") == []
    bad = await asyncio.to_thread(cli.main, ["sessions", "get", f"{NS}/no spaces", *argv])
    assert bad != 0
    assert "session id" in capsys.readouterr().err


async def test_a_runs_turns_are_added_once_however_often_its_last_step_is_delivered(
    redis_url: str,
) -> None:
    """The worker appends before the completion that ends a run; a redelivered last step
    appends again, and the session keeps the run's turns once."""
    client = connection.connect_binary(redis_url)
    store = sessions.SessionStore(client, NS)
    turn = [{"role": "user", "content": "Q: once"}, {"role": "assistant", "content": "A"}]
    try:
        assert await store.append("s-once", turn, ttl_seconds=60, run_id="r1")
        assert not await store.append("s-once", turn, ttl_seconds=60, run_id="r1")
        assert await store.append("s-once", turn, ttl_seconds=60, run_id="r2")
        assert len(await store.messages("s-once")) == 4
    finally:
        await client.aclose()
