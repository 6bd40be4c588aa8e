"""The operator's link to the history database: one connection, opened (and the schema
migrated) on first use and again after it breaks, so an operator that starts while
PostgreSQL is down, or outlives a restart of it, archives once it is back. Until then
ended runs wait in the outbox, unacknowledged (trimtab.queue.ended)."""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import Sequence

from trimtab.history import records, store

log = logging.getLogger(__name__)


class Archive:
    def __init__(self, url: str, password: str | None = None) -> None:
        self.url, self._password = url, password
        self._conn: store.Connection | None = None

    async def _connection(self) -> store.Connection:
        if self._conn is None or self._conn.closed:
            conn = await store.connect(self.url, self._password)
            try:
                applied = await store.migrate(conn)
            except store.UNAVAILABLE as exc:
                await conn.close()
                raise store.HistoryUnavailableError(f"migrating the history: {exc}") from exc
            if applied:
                log.info("history schema: applied migrations %s", applied)
            self._conn = conn
        return self._conn

    async def write(self, runs: Sequence[records.ArchivedRun]) -> None:
        """Archive the runs, all or none; raises HistoryUnavailableError (and drops the
        connection, to open a fresh one next time) when the database is away."""
        conn = await self._connection()
        try:
            await store.archive(conn, runs)
        except store.HistoryUnavailableError:
            await self.close()
            raise

    async def expire(self, now: datetime.datetime) -> int:
        """Remove inputs and outputs kept past their workflow's retention."""
        conn = await self._connection()
        try:
            return await store.expire_inputs_and_outputs(conn, now)
        except store.HistoryUnavailableError:
            await self.close()
            raise

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(*store.UNAVAILABLE):
                await conn.close()
