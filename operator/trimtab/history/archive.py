"""The operator's writes to the history database, over one Link (which migrates the
schema when it connects). Until the database is back, ended runs wait in the outbox,
unacknowledged (trimtab.queue.ended)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from trimtab.history import link, records, store


class Archive:
    def __init__(self, url: str, password: str | None = None) -> None:
        self.url = url
        self._link = link.Link(url, password, migrate=True)

    async def write(self, runs: Sequence[records.ArchivedRun]) -> None:
        """Archive the runs, all or none; raises HistoryUnavailableError (and drops the
        connection, to open a fresh one next time) when the database is away."""
        conn = await self._link.connection()
        try:
            await store.archive(conn, runs)
        except store.HistoryUnavailableError:
            await self._link.close()
            raise

    async def expire(self, now: datetime.datetime) -> int:
        """Remove inputs and outputs kept past their workflow's retention."""
        conn = await self._link.connection()
        try:
            return await store.expire_inputs_and_outputs(conn, now)
        except store.HistoryUnavailableError:
            await self._link.close()
            raise

    async def close(self) -> None:
        await self._link.close()
