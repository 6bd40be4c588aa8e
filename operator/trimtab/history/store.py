"""PostgreSQL I/O for the history: connecting, applying the versioned SQL migrations
(migrations/NNNN_name.sql, each once, recorded in trimtab_schema_migrations, under an
advisory lock so two operators starting together apply them once), archiving runs with
idempotent upserts, and the queries over them.

psycopg 3 (async): executemany pipelines a batch's statements in one round trip, and
the upserts make a repeated archive of the same run (an outbox entry read again after
a crash) write the same row again, never a second one.
"""

from __future__ import annotations

import datetime
import enum
import importlib.resources
import re
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from trimtab.history import records

MIGRATION_LOCK = 0x7472696D74616221  # pg_advisory_xact_lock key: "trimtab!"
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

Connection = psycopg.AsyncConnection[tuple[Any, ...]]


class HistoryUnavailableError(ConnectionError):
    """PostgreSQL could not be reached or refused the work; nothing was archived."""


UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError, OSError)


async def connect(url: str, password: str | None = None) -> Connection:
    """A connection to the history database (`password` when the URL has none)."""
    conninfo = psycopg.conninfo.make_conninfo(url, password=password) if password else url
    try:
        return await psycopg.AsyncConnection.connect(conninfo, connect_timeout=5)
    except UNAVAILABLE as exc:
        raise HistoryUnavailableError(f"history database: {exc}".strip()) from exc


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every migration shipped, in order."""
    found = []
    for item in importlib.resources.files("trimtab.history.migrations").iterdir():
        match = _MIGRATION_NAME.match(item.name)
        if match:
            found.append((int(match[1]), match[2], item.read_text()))
    return sorted(found)


async def migrate(conn: Connection) -> list[int]:
    """Apply the migrations not yet applied, in one transaction; the versions applied."""
    applied = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS trimtab_schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r[0] for r in await (await conn.execute(
            "SELECT version FROM trimtab_schema_migrations"
        )).fetchall()}  # fmt: skip
        for version, name, sql in migrations():
            if version in done:
                continue
            await conn.execute(sql.encode())  # several statements: the simple protocol
            await conn.execute(
                "INSERT INTO trimtab_schema_migrations (version, name) VALUES (%s, %s)",
                (version, name),
            )
            applied.append(version)
    return applied


_RUN_COLUMNS = (
    "namespace, run_id, workflow, generation, status, priority, created_at, ended_at,"
    " duration_seconds, tokens, cost, error, session, idempotency_key, trace_id"
)
_UPSERT_RUN = (
    f"INSERT INTO trimtab_runs ({_RUN_COLUMNS}, inputs, outputs, io_expires_at) VALUES"  # noqa: S608 - constant columns
    " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (namespace, run_id) DO UPDATE SET status = EXCLUDED.status,"
    " ended_at = EXCLUDED.ended_at, duration_seconds = EXCLUDED.duration_seconds,"
    " tokens = EXCLUDED.tokens, cost = EXCLUDED.cost, error = EXCLUDED.error,"
    " inputs = EXCLUDED.inputs, outputs = EXCLUDED.outputs,"
    " io_expires_at = EXCLUDED.io_expires_at, archived_at = now()"
)
_UPSERT_STEP = (
    "INSERT INTO trimtab_steps (namespace, run_id, step, state, attempts, pool, model, tier,"
    " queued_at, started_at, ended_at, tokens, cost, error, error_type) VALUES"
    " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (namespace, run_id, step) DO UPDATE SET state = EXCLUDED.state,"
    " attempts = EXCLUDED.attempts, pool = EXCLUDED.pool, model = EXCLUDED.model,"
    " tier = EXCLUDED.tier, queued_at = EXCLUDED.queued_at,"
    " started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at,"
    " tokens = EXCLUDED.tokens, cost = EXCLUDED.cost, error = EXCLUDED.error,"
    " error_type = EXCLUDED.error_type"
)

_ATTEMPT_COLUMNS = (
    "namespace, run_id, step, attempt, outcome, pool, model, tier, capacity, worker,"
    " started_at, ended_at, tokens, cost, error, error_type"
)
_UPSERT_ATTEMPT = (
    f"INSERT INTO trimtab_attempts ({_ATTEMPT_COLUMNS}) VALUES"  # noqa: S608 - constant columns
    " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (namespace, run_id, step, attempt) DO UPDATE SET"
    " outcome = EXCLUDED.outcome, pool = EXCLUDED.pool, model = EXCLUDED.model,"
    " tier = EXCLUDED.tier, capacity = EXCLUDED.capacity, worker = EXCLUDED.worker,"
    " started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at,"
    " tokens = EXCLUDED.tokens, cost = EXCLUDED.cost, error = EXCLUDED.error,"
    " error_type = EXCLUDED.error_type"
)


def _run_row(r: records.ArchivedRun) -> tuple[Any, ...]:
    return (
        r.namespace, r.run_id, r.workflow, r.generation, r.status, r.priority, r.created_at,
        r.ended_at, r.duration_seconds, r.tokens, r.cost, r.error, r.session,
        r.idempotency_key, r.trace_id, _json(r.inputs), _json(r.outputs), r.io_expires_at,
    )  # fmt: skip


def _json(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


def _step_rows(r: records.ArchivedRun) -> list[tuple[Any, ...]]:
    return [(r.namespace, r.run_id, *_step_values(s)) for s in r.steps]


def _step_values(s: records.ArchivedStep) -> tuple[Any, ...]:
    return (
        s.step, s.state, s.attempts, s.pool, s.model, s.tier, s.queued_at, s.started_at,
        s.ended_at, s.tokens, s.cost, s.error, s.error_type,
    )  # fmt: skip


def _attempt_rows(r: records.ArchivedRun) -> list[tuple[Any, ...]]:
    return [
        (
            r.namespace,
            r.run_id,
            s.step,
            a.attempt,
            a.outcome,
            a.pool,
            a.model,
            a.tier,
            a.capacity,
            a.worker,
            a.started_at,
            a.ended_at,
            a.tokens,
            a.cost,
            a.error,
            a.error_type,
        )
        for s in r.steps
        for a in s.attempt_rows
    ]


async def archive(conn: Connection, runs: Sequence[records.ArchivedRun]) -> None:
    """Write the runs and their steps in one transaction: all of them or none."""
    if not runs:
        return
    try:
        async with conn.transaction(), conn.cursor() as cur:
            await cur.executemany(_UPSERT_RUN, [_run_row(r) for r in runs])
            steps = [row for r in runs for row in _step_rows(r)]
            if steps:
                await cur.executemany(_UPSERT_STEP, steps)
            attempts = [row for r in runs for row in _attempt_rows(r)]
            if attempts:
                await cur.executemany(_UPSERT_ATTEMPT, attempts)
    except UNAVAILABLE as exc:
        raise HistoryUnavailableError(f"archiving {len(runs)} run(s): {exc}".strip()) from exc


async def expire_inputs_and_outputs(conn: Connection, now: datetime.datetime) -> int:
    """Remove kept inputs and outputs past their retention; how many runs had them."""
    try:
        async with conn.transaction():
            done = await conn.execute(
                "UPDATE trimtab_runs SET inputs = NULL, outputs = NULL, io_expires_at = NULL"
                " WHERE io_expires_at <= %s",
                (now,),
            )
    except UNAVAILABLE as exc:
        raise HistoryUnavailableError(f"expiring inputs and outputs: {exc}".strip()) from exc
    return done.rowcount


class CostBy(enum.StrEnum):
    """What a cost report groups by: the runs' namespace, workflow or day, their
    steps' pool, model or tier, or the capacity type their attempts ran on."""

    NAMESPACE = "namespace"
    WORKFLOW = "workflow"
    DAY = "day"
    POOL = "pool"
    MODEL = "model"
    TIER = "tier"
    CAPACITY = "capacity"


_RUN_KEYS = {
    CostBy.NAMESPACE: "namespace",
    CostBy.WORKFLOW: "namespace || '/' || workflow",
    CostBy.DAY: "to_char(ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}
_STEP_KEYS = {
    CostBy.POOL: "namespace || '/' || coalesce(pool, '-')",
    CostBy.MODEL: "coalesce(model, '-')",
    CostBy.TIER: "coalesce(tier, '-')",
}
_ATTEMPT_KEYS = {CostBy.CAPACITY: "coalesce(capacity, '-')"}


async def cost_report(
    conn: Connection,
    by: CostBy,
    *,
    since: datetime.datetime,
    until: datetime.datetime,
    namespace: str | None = None,
) -> list[records.CostRow]:
    """Spend of the runs that ended in [since, until), grouped `by`, largest first."""
    if by in _RUN_KEYS:
        key, table, counted = _RUN_KEYS[by], "trimtab_runs", "count(*)"
    elif by in _STEP_KEYS:
        key, table, counted = _STEP_KEYS[by], "trimtab_steps", "count(DISTINCT run_id)"
    else:
        key, table, counted = _ATTEMPT_KEYS[by], "trimtab_attempts", "count(DISTINCT run_id)"
    where = "ended_at >= %s AND ended_at < %s" + (" AND namespace = %s" if namespace else "")
    args: list[Any] = [since, until, *([namespace] if namespace else [])]
    query = (
        f"SELECT {key} AS k, {counted}, coalesce(sum(tokens), 0), coalesce(sum(cost), 0)"  # noqa: S608 - keys are constants
        f" FROM {table} WHERE {where} GROUP BY k ORDER BY 4 DESC, k"
    )
    found = await (await conn.execute(query.encode(), args)).fetchall()
    return [records.CostRow(str(k), int(n), int(t), float(c)) for k, n, t, c in found]


async def list_runs(
    conn: Connection,
    namespace: str,
    *,
    workflow: str | None = None,
    status: str | None = None,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    limit: int = 50,
) -> list[records.ArchivedRun]:
    """Archived runs of the namespace, newest first, filtered; without their steps."""
    where: list[str] = ["namespace = %s"]
    args: list[Any] = [namespace]
    for column, op, value in (
        ("workflow", "=", workflow),
        ("status", "=", status),
        ("created_at", ">=", since),
        ("created_at", "<", until),
    ):
        if value is not None:
            where.append(f"{column} {op} %s")
            args.append(value)
    query = (
        f"SELECT {_RUN_COLUMNS} FROM trimtab_runs WHERE {' AND '.join(where)}"  # noqa: S608
        " ORDER BY created_at DESC LIMIT %s"
    )
    found = await (await conn.execute(query.encode(), [*args, limit])).fetchall()
    return [_archived(row) for row in found]


def _archived(row: tuple[Any, ...]) -> records.ArchivedRun:
    ns, rid, wf, gen, status, pri, created, ended, _, tokens, cost, err, ses, idem, tid = row
    return records.ArchivedRun(
        ns, rid, wf, gen, status, pri, created, ended, tokens, cost, err, ses, idem, tid
    )
