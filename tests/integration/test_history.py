"""Run history in a real PostgreSQL (Debian's server, started on a free loopback port):
ended runs archived from the outbox with their steps, cost reports whose totals match
the workflow's own counters, and nothing lost or doubled when PostgreSQL goes away
mid-load and comes back."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from tests.harness import api_server, runtime
from trimtab import config, metrics
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.handlers import ended_runs, state
from trimtab.history import archive, store
from trimtab.queue import ended, keys, workflows
from trimtab.sdk import Client, http_client
from trimtab_dev import postgres

NS = "hist"
SIM: dict[str, Any] = {
    "seed": 5,
    "tool_delay_seconds": 0.0,
    "default": {"ttft_seconds": 0.0, "per_token_seconds": 0.0, "output_tokens_mean": 12},
    "models": {"sim-small": {"name": "sim-small", "ttft_seconds": 0.05, "script": ["500"]}},
}
DAY = datetime.timedelta(days=1)


@pytest.fixture(scope="module")
def pg() -> Iterator[postgres.Postgres]:
    with postgres.running_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), SIM) as url:
        yield url


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def shared(
    pg: postgres.Postgres, redis_url: str, sdk: Client, registry: CollectorRegistry
) -> AsyncIterator[state.Shared]:
    found = state.Shared(
        cfg=config.OperatorConfig(redis_url=redis_url),
        redis=sdk.redis,
        metrics=metrics.build(registry),
        history=archive.Archive(pg.url),
    )
    found.views.pools[(NS, "p")] = {"spec": {"model": {"name": "sim-small", "tier": "small"}}}
    yield found
    assert found.history is not None
    await found.history.close()


async def _publish(sdk: Client, name: str) -> None:
    spec = {
        "defaultPool": "p",
        "steps": [
            {
                "name": "a",
                "prompt": "go {{ inputs.i }}",
                "retry": {"backoff": {"initialSeconds": 0.1}},
            },
            {"name": "b", "prompt": "then {{ a }}", "dependsOn": ["a"]},
        ],
    }
    await sdk.publish(NS, name, awf.AgentWorkflowSpec.model_validate(spec))


def _worker(sim: str, redis_url: str) -> Any:
    spec = runtime.pool_spec(sim, worker__concurrency=8)
    cfg = runtime.worker_settings(NS, "p", spec, redis_url)
    # What a worker pod reads from its trimtab.io/capacity label.
    return runtime.in_process_worker(dataclasses.replace(cfg, capacity="Spot"))


async def _archive_all(shared: state.Shared) -> int:
    return await ended_runs.handle_ended_in(shared, NS)


async def test_ended_runs_are_archived_with_their_steps_and_costs_add_up(
    pg: postgres.Postgres,
    shared: state.Shared,
    sdk: Client,
    sim: str,
    redis_url: str,
    registry: CollectorRegistry,
) -> None:
    await _publish(sdk, "hist-costs")
    async with _worker(sim, redis_url):
        refs = [
            await sdk.submit(NS, "hist-costs", {"i": i}, idempotency_key=f"k{i}") for i in range(6)
        ]
        results = [await sdk.result(r, timeout=30) for r in refs]
    assert {r.status for r in results} == {"succeeded"}
    assert await _archive_all(shared) == 6
    assert registry.get_sample_value("trimtab_runs_archived_total", {"namespace": NS}) == 6
    assert registry.get_sample_value("trimtab_history_lag_seconds", {"namespace": NS}) == 0
    run_count = registry.get_sample_value(
        "trimtab_run_duration_seconds_count",
        {"namespace": NS, "workflow": "hist-costs", "outcome": "succeeded"},
    )
    assert run_count == 6
    rows = pg.query(
        "SELECT run_id, status, tokens, idempotency_key, trace_id FROM trimtab_runs"
        " WHERE workflow = 'hist-costs' ORDER BY idempotency_key"
    )
    assert [r[0] for r in rows] == [r.split("/")[1] for r in refs]
    assert {r[1] for r in rows} == {"succeeded"}
    assert [r[3] for r in rows] == [f"k{i}" for i in range(6)]
    assert all(len(r[4]) == 32 for r in rows)
    steps = pg.query(
        "SELECT step, state, attempts, pool, model, tier FROM trimtab_steps s JOIN trimtab_runs"
        " r USING (namespace, run_id) WHERE r.workflow = 'hist-costs' ORDER BY run_id, step"
    )
    assert len(steps) == 12
    assert {(s[0], s[1], s[3], s[4], s[5]) for s in steps} == {
        ("a", "done", "p", "sim-small", "small"),
        ("b", "done", "p", "sim-small", "small"),
    }
    assert max(int(s[2]) for s in steps) == 2, "the model's first call failed: two attempts"
    _check_attempts(pg)

    conn = await store.connect(pg.url)
    now = datetime.datetime.now(datetime.UTC)
    counters = await workflows.run_stats(sdk.redis, NS, "hist-costs", now=now.timestamp())
    by_workflow = await store.cost_report(
        conn, store.CostBy.WORKFLOW, since=now - DAY, until=now + DAY
    )
    (row,) = [r for r in by_workflow if r.key == f"{NS}/hist-costs"]
    assert (row.runs, row.tokens) == (6, counters.tokens), "the report matches the status counters"
    assert row.cost == pytest.approx(counters.cost)
    for by in (store.CostBy.POOL, store.CostBy.MODEL, store.CostBy.DAY, store.CostBy.TIER,
               store.CostBy.CAPACITY):  # fmt: skip
        total = sum(
            r.cost for r in await store.cost_report(conn, by, since=now - DAY, until=now + DAY)
        )
        assert total == pytest.approx(sum(r.cost for r in by_workflow)), by
    listed = await store.list_runs(conn, NS, workflow="hist-costs", limit=4)
    assert len(listed) == 4
    assert [r.created_at for r in listed] == sorted((r.created_at for r in listed), reverse=True)
    await conn.close()

    report = _cli(
        "cost", "report", "--by", "workflow", "-n", NS, "--since", "1h", "-o", "json", pg=pg
    )
    (cli_row,) = [r for r in json.loads(report) if r["key"] == f"{NS}/hist-costs"]
    assert cli_row["cost"] == pytest.approx(counters.cost)
    listed_cli = _cli("runs", "list", "--history", "-n", NS, "--workflow", "hist-costs", pg=pg)
    assert sum(ref.split("/")[1] in listed_cli for ref in refs) == 6
    assert "SECONDS" in listed_cli.splitlines()[0]
    assert await _archive_all(shared) == 0, "archived entries leave the outbox"
    again = await sdk.submit(NS, "hist-costs", {"i": 0}, idempotency_key="k0")
    assert again == refs[0]
    assert pg.query("SELECT count(*) FROM trimtab_runs WHERE workflow = 'hist-costs'") == [["6"]]


def _check_attempts(pg: postgres.Postgres) -> None:
    """One row per attempt, each with its worker's capacity type, adding up to its step."""
    attempts = pg.query(
        "SELECT a.step, a.attempt, a.outcome, a.capacity, a.error_type, a.tokens,"
        " a.worker IS NOT NULL"
        " FROM trimtab_attempts a JOIN trimtab_runs r USING (namespace, run_id)"
        " WHERE r.workflow = 'hist-costs' ORDER BY run_id, step, attempt"
    )
    assert len(attempts) == 13, "one row per attempt: twelve steps, one of them retried"
    (failed,) = [a for a in attempts if a[2] == "retry"]
    assert failed[:2] == ["a", "1"]
    assert failed[4] == "http_5xx"
    assert {a[2] for a in attempts} == {"done", "retry"}
    assert {a[3] for a in attempts} == {"Spot"}, "each attempt says where its worker ran"
    assert all(a[6] == "t" for a in attempts)
    step_tokens = pg.query(
        "SELECT sum(s.tokens), (SELECT sum(a.tokens) FROM trimtab_attempts a JOIN trimtab_runs r"
        " USING (namespace, run_id) WHERE r.workflow = 'hist-costs') FROM trimtab_steps s"
        " JOIN trimtab_runs r USING (namespace, run_id) WHERE r.workflow = 'hist-costs'"
    )
    assert step_tokens[0][0] == step_tokens[0][1], "a step's attempts add up to the step"


def _cli(*args: str, pg: postgres.Postgres) -> str:
    """`trimtab ARGS` against the history database, as a user runs it."""
    env = {**os.environ, "TRIMTAB_HISTORY_URL": pg.url}
    done = subprocess.run(
        [sys.executable, "-m", "trimtab", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def _keep_archiving(shared: state.Shared, stop: asyncio.Event, errors: list[str]) -> None:
    """The operator's loop: a pass each 0.2 s, a failed pass retried."""
    while not stop.is_set():
        try:
            await _archive_all(shared)
        except store.HistoryUnavailableError as exc:
            errors.append(str(exc))
        await asyncio.sleep(0.2)


async def test_nothing_is_lost_or_doubled_when_postgres_goes_away_mid_load(
    pg: postgres.Postgres, shared: state.Shared, sdk: Client, sim: str, redis_url: str
) -> None:
    await _publish(sdk, "hist-outage")
    stop, errors = asyncio.Event(), []
    archiver = asyncio.create_task(_keep_archiving(shared, stop, errors))
    try:
        async with _worker(sim, redis_url):
            refs = [await sdk.submit(NS, "hist-outage", {"i": i}) for i in range(30)]
            await sdk.result(refs[9], timeout=30)
            pg.stop()
            more = [await sdk.submit(NS, "hist-outage", {"i": i}) for i in range(30, 60)]
            results = [await sdk.result(r, timeout=60) for r in refs + more]
            await asyncio.sleep(1.0)  # passes fail while the database is away
            pending = await sdk.redis.xpending(keys.ended_runs(NS), ended.GROUP)
            assert pending["pending"] > 0, "unarchived runs stay pending in the outbox"
            pg.start()
            for _ in range(100):
                if not await sdk.redis.xlen(keys.ended_runs(NS)):
                    break
                await asyncio.sleep(0.2)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await archiver
    assert errors, "some passes met the database away"
    assert {r.status for r in results} == {"succeeded"}
    rows = pg.query(
        "SELECT run_id, count(*) OVER (PARTITION BY run_id), status FROM trimtab_runs"
        " WHERE workflow = 'hist-outage'"
    )
    assert sorted(r[0] for r in rows) == sorted(r.split("/")[1] for r in refs + more)
    assert {r[1] for r in rows} == {"1"}
    assert {r[2] for r in rows} == {"succeeded"}
    assert pg.query(
        "SELECT count(*) FROM trimtab_steps s JOIN trimtab_runs r USING (namespace, run_id)"
        " WHERE r.workflow = 'hist-outage'"
    ) == [["120"]]
    assert await sdk.redis.xlen(keys.ended_runs(NS)) == 0


async def test_inputs_and_outputs_are_kept_only_when_the_workflow_says_and_for_its_retention(
    pg: postgres.Postgres, shared: state.Shared, sdk: Client, sim: str, redis_url: str
) -> None:
    await _publish(sdk, "hist-kept")
    await _publish(sdk, "hist-plain")
    history = {"keepInputsAndOutputs": True, "retentionDays": 7}
    shared.views.workflows[(NS, "hist-kept")] = {"spec": {"history": history}}
    async with _worker(sim, redis_url):
        kept = await sdk.submit(NS, "hist-kept", {"i": 41})
        plain = await sdk.submit(NS, "hist-plain", {"i": 42})
        for ref in (kept, plain):
            assert (await sdk.result(ref, timeout=30)).status == "succeeded"
    await _archive_all(shared)
    rows = dict(
        (r[0], r[1:])
        for r in pg.query(
            "SELECT workflow, inputs->>'i', outputs ? 'b', io_expires_at - ended_at"
            " FROM trimtab_runs WHERE workflow IN ('hist-kept', 'hist-plain')"
        )
    )
    assert rows["hist-kept"] == ["41", "t", "7 days"]
    assert rows["hist-plain"] == ["", "", ""], "not kept unless the workflow says so"
    assert shared.history is not None
    now = datetime.datetime.now(datetime.UTC)
    assert await shared.history.expire(now) == 0, "within its retention"
    assert await shared.history.expire(now + datetime.timedelta(days=8)) == 1
    assert pg.query(
        "SELECT inputs IS NULL, outputs IS NULL, status FROM trimtab_runs"
        " WHERE workflow = 'hist-kept'"
    ) == [["t", "t", "succeeded"]], "the metadata stays"


async def test_the_api_serves_the_history_and_the_cost_report(
    pg: postgres.Postgres,
    shared: state.Shared,
    sdk: Client,
    sim: str,
    redis_url: str,
    tmp_path: pathlib.Path,
) -> None:
    await _publish(sdk, "hist-api")
    async with _worker(sim, redis_url):
        refs = [await sdk.submit(NS, "hist-api", {"i": i}) for i in range(3)]
        for ref in refs:
            assert (await sdk.result(ref, timeout=30)).status == "succeeded"
    await _archive_all(shared)
    extra = ("--history-url", pg.url)
    with api_server.running_api(redis_url, tmp_path / "api.log", no_auth=True, extra=extra) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            listed = await http.get(
                f"/v1/namespaces/{NS}/history/runs", params={"workflow": "hist-api"}
            )
            assert listed.status_code == 200, listed.text
            ids = {r["id"] for r in listed.json()["runs"]}
            assert ids == {r.split("/")[1] for r in refs}
            bad = await http.get(f"/v1/namespaces/{NS}/cost", params={"by": "namespace"})
            assert bad.status_code == 422, "within a namespace, not by namespace"
        client = http_client.HttpClient(url)
        try:
            report = await client.cost_report(NS, by="workflow")
            runs_back = await client.history_runs(NS, workflow="hist-api", limit=2)
        finally:
            await client.aclose()
    (row,) = [r for r in report.rows if r.key == f"{NS}/hist-api"]
    assert row.runs == 3
    counters = await workflows.run_stats(sdk.redis, NS, "hist-api", now=time.time())
    assert row.cost == pytest.approx(counters.cost)
    assert len(runs_back) == 2
    assert runs_back[0].created_ms >= runs_back[1].created_ms
