"""The run history from an application: archived runs and what they spent, read from
the history database the operator archives to (trimtab.history). Over HTTP, the same
queries are HttpClient.history_runs and HttpClient.cost_report."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from trimtab.history import records, store

CostBy = store.CostBy


class History:
    """One connection to the history database, opened on first use and again after
    it breaks."""

    def __init__(self, url: str, password: str | None = None) -> None:
        self.url, self._password = url, password
        self._conn: store.Connection | None = None

    async def _connection(self) -> store.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = await store.connect(self.url, self._password)
        return self._conn

    async def runs(
        self,
        namespace: str,
        *,
        workflow: str | None = None,
        status: str | None = None,
        since: datetime.datetime | None = None,
        until: datetime.datetime | None = None,
        limit: int = 50,
    ) -> Sequence[records.ArchivedRun]:
        """Archived runs of the namespace, newest first (without their steps)."""
        if not 1 <= limit <= 1000:
            raise ValueError(f"limit is 1 to 1000, got {limit}")
        conn = await self._connection()
        return await store.list_runs(
            conn, namespace, workflow=workflow, status=status, since=since, until=until,
            limit=limit,
        )  # fmt: skip

    async def cost(
        self,
        by: store.CostBy,
        *,
        since: datetime.datetime,
        until: datetime.datetime,
        namespace: str | None = None,
    ) -> Sequence[records.CostRow]:
        """Spend of the runs that ended in [since, until), grouped `by`."""
        if since >= until:
            raise ValueError("since must be before until")
        conn = await self._connection()
        return await store.cost_report(conn, by, since=since, until=until, namespace=namespace)

    async def aclose(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()
