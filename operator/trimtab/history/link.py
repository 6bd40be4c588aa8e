"""One process's connection to the history database, opened on first use and again
after it breaks, so a process that starts while PostgreSQL is down, or outlives a
restart of it, carries on once it is back. The operator's link migrates the schema
when it connects (it writes); a reader's does not (it may hold no DDL rights)."""

from __future__ import annotations

import contextlib
import logging

from trimtab.history import store

log = logging.getLogger(__name__)


class Link:
    def __init__(self, url: str, password: str | None = None, *, migrate: bool = False) -> None:
        self.url, self._password, self._migrate = url, password, migrate
        self._conn: store.Connection | None = None

    async def connection(self) -> store.Connection:
        if self._conn is None or self._conn.closed:
            conn = await store.connect(self.url, self._password)
            if self._migrate:
                try:
                    applied = await store.migrate(conn)
                except store.UNAVAILABLE as exc:
                    await conn.close()
                    raise store.HistoryUnavailableError(f"migrating the history: {exc}") from exc
                if applied:
                    log.info("history schema: applied migrations %s", applied)
            self._conn = conn
        return self._conn

    async def close(self) -> None:
        """Drop the connection (a fresh one is opened next time)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(*store.UNAVAILABLE):
                await conn.close()
