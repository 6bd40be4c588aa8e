"""The history's pure parts: what an ended run becomes, the migrations shipped, and
the command line's times."""

from __future__ import annotations

import dataclasses
import datetime
import json

import pytest

from trimtab import metrics
from trimtab.cli import history_cmd
from trimtab.handlers import archiving
from trimtab.history import records, store
from trimtab.queue import attempts, ended, runs, wire
from trimtab.telemetry import ids

NOW = datetime.datetime(2026, 12, 3, 12, 0, tzinfo=datetime.UTC)


def _step(state: wire.StepState, pool: str | None, error: str | None = None) -> runs.StepView:
    return runs.StepView(
        state=state, attempt=2, pool=pool, output=None, error=error, tokens=10, cost=0.25,
        queued_ms=1000.0, started_ms=1500.0, ended_ms=2500.0,
    )  # fmt: skip


def _ended(state: runs.RunState | None) -> ended.EndedRun:
    return ended.EndedRun("1-0", "ns", "r1", wire.RunStatus.FAILED, 3000.0, state)


def test_an_ended_run_becomes_its_history_row_with_its_steps_models() -> None:
    state = runs.RunState(
        run_id="r1", namespace="ns", workflow="wf", generation=4, status=wire.RunStatus.FAILED,
        inputs={"secret": "x"}, created_ms=1000.0, ended_ms=None, tokens=20, cost=0.5, version=2,
        steps={
            "b": _step(wire.StepState.DEAD, "big", "http_5xx: HTTP 500"),
            "a": _step(wire.StepState.DONE, "small"),
        },
        idempotency_key="order-1", traceparent=None,
    )  # fmt: skip
    pools = {("ns", "small"): {"spec": {"model": {"name": "m-small", "tier": "small"}}}}
    row = archiving.archived(_ended(state), pools)
    assert row is not None
    assert (row.workflow, row.generation, row.status) == ("wf", 4, "failed")
    assert row.ended_at == records.at(3000.0), "no end in the record: the outbox entry's"
    assert row.duration_seconds == 2.0
    assert row.idempotency_key == "order-1"
    assert row.trace_id == f"{ids.run_trace('ns', 'r1').trace_id:032x}"
    a, b = row.steps
    assert (a.step, a.model, a.tier, a.error_type) == ("a", "m-small", "small", None)
    assert (b.step, b.model, b.state, b.error_type) == ("b", None, "dead", "http_5xx")
    assert "secret" not in repr(row), "inputs are not archived"


def _log(*entries: tuple[int, wire.AttemptOutcome, str, float, int, float]) -> str:
    f = wire.AttemptField
    return json.dumps([
        {f.ATTEMPT: n, f.OUTCOME: o, f.POOL: pool, f.WORKER: "w1", f.CAPACITY: "Spot",
         f.STARTED_MS: end - 100, f.ENDED_MS: end, f.TOKENS: t, f.COST: c, f.ERROR: ""}
        for n, o, pool, end, t, c in entries
    ])  # fmt: skip


def test_the_attempt_log_gives_each_attempt_its_own_spend() -> None:
    log = _log(
        (1, wire.AttemptOutcome.RETRY, "small", 1100.0, 4, 0.1),
        (2, wire.AttemptOutcome.ESCALATED, "small", 1300.0, 10, 0.25),
        (3, wire.AttemptOutcome.DONE, "big", 1600.0, 30, 1.0),
    )
    found = attempts.parse_log(log)
    assert [(a.attempt, a.tokens) for a in found] == [(1, 4), (2, 6), (3, 20)]
    assert [a.cost for a in found] == pytest.approx([0.1, 0.15, 0.75])
    assert found[2].outcome is wire.AttemptOutcome.DONE
    assert (found[0].capacity, found[0].worker, found[0].error) == ("Spot", "w1", None)
    assert attempts.parse_log(None) == ()


def test_an_attempt_its_run_cut_off_holds_the_rest_of_the_steps_spend() -> None:
    retried = _log((1, wire.AttemptOutcome.RETRY, "small", 1400.0, 4, 0.1))
    base = dataclasses.replace(
        _step(wire.StepState.CANCELLED, "small"),
        attempt_log=attempts.parse_log(retried), worker="w2", capacity="OnDemand",
    )  # fmt: skip
    state = runs.RunState(
        run_id="r1", namespace="ns", workflow="wf", generation=1,
        status=wire.RunStatus.CANCELLED, inputs={}, created_ms=1000.0, ended_ms=2500.0,
        tokens=10, cost=0.25, version=1, steps={"a": base},
    )  # fmt: skip
    row = archiving.archived(_ended(state), {})
    assert row is not None
    rows = row.steps[0].attempt_rows
    assert [(a.attempt, a.outcome) for a in rows] == [
        (1, "retry"),
        (2, wire.AttemptOutcome.INTERRUPTED),
    ]
    assert (rows[1].tokens, rows[1].capacity, rows[1].worker) == (6, "OnDemand", "w2")
    assert sum(a.cost for a in rows) == pytest.approx(0.25), "the attempts add up to the step"
    waiting = dataclasses.replace(base, started_ms=1300.0)  # its retry never started
    state = dataclasses.replace(state, steps={"a": waiting})
    row = archiving.archived(_ended(state), {})
    assert row is not None
    assert [a.attempt for a in row.steps[0].attempt_rows] == [1]


def test_an_expired_run_is_not_archived() -> None:
    assert archiving.archived(_ended(None), {}) is None


def test_the_migrations_are_numbered_and_in_order() -> None:
    found = store.migrations()
    assert [v for v, _, _ in found] == list(range(1, len(found) + 1))
    assert "CREATE TABLE trimtab_runs" in found[0][2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", NOW - datetime.timedelta(minutes=90)),
        ("24h", NOW - datetime.timedelta(hours=24)),
        ("7d", NOW - datetime.timedelta(days=7)),
        ("2026-12-01T00:00:00", datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)),
    ],
)
def test_a_time_is_a_span_back_from_now_or_an_iso_time(
    text: str, expected: datetime.datetime
) -> None:
    assert history_cmd.ago(text, NOW) == expected


def test_a_bad_time_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="not a span") as refused:
        history_cmd.ago("yesterday", NOW)
    assert "\n" not in str(refused.value)


def test_a_workflow_that_keeps_inputs_and_outputs_has_them_archived_until_its_retention() -> None:
    state = runs.RunState(
        run_id="r1", namespace="ns", workflow="wf", generation=1,
        status=wire.RunStatus.SUCCEEDED, inputs={"q": "hi"}, created_ms=1000.0,
        ended_ms=2000.0, tokens=1, cost=0.0, version=1,
        steps={"a": runs.StepView(
            state=wire.StepState.DONE, attempt=1, pool="p", output={"answer": 1}, error=None,
            tokens=1, cost=0.0, queued_ms=None, started_ms=None, ended_ms=None,
        )},
    )  # fmt: skip
    run = ended.EndedRun("1-0", "ns", "r1", wire.RunStatus.SUCCEEDED, 2000.0, state)
    keeps = {
        ("ns", "wf"): {"spec": {"history": {"keepInputsAndOutputs": True, "retentionDays": 2}}}
    }
    row = archiving.archived(run, {}, keeps)
    assert row is not None
    assert row.inputs == {"q": "hi"}
    assert row.outputs == {"a": {"answer": 1}}
    assert row.io_expires_at == records.at(2000.0 + 2 * 86400 * 1000)
    plain = archiving.archived(run, {}, {})
    assert plain is not None
    assert (plain.inputs, plain.outputs, plain.io_expires_at) == (None, None, None)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (metrics.described(metrics.ErrorType.HTTP_5XX, "HTTP 500: down"), "http_5xx"),
        (metrics.described(metrics.ErrorType.OTHER, "boom"), "error"),
        ("not good enough", None),  # a reviewer's words
        ("http_5xxx: close", None),
        (None, None),
    ],
)
def test_an_errors_type_is_read_back_from_how_it_was_described(
    text: str | None, found: str | None
) -> None:
    kind = metrics.error_type_of(text)
    assert (kind.value if kind else None) == found
