"""The run history from an application: archived runs and what they spent, read from
the history database the operator archives to (trimtab.history). Over HTTP, the same
queries are HttpClient.history_runs and HttpClient.cost_report."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from trimtab.history import link, records, store

CostBy = store.CostBy


class History:
    """Reads over one connection to the history database (trimtab.history.link)."""

    def __init__(self, url: str, password: str | None = None) -> None:
        self.url = url
        self._link = link.Link(url, password)

    async def _connection(self) -> store.Connection:
        return await self._link.connection()

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
        try:
            return await store.list_runs(
                conn, namespace, workflow=workflow, status=status, since=since, until=until,
                limit=limit,
            )  # fmt: skip
        except store.UNAVAILABLE as exc:
            await self._link.close()
            raise store.HistoryUnavailableError(f"reading the history: {exc}") from exc

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
        try:
            return await store.cost_report(conn, by, since=since, until=until, namespace=namespace)
        except store.UNAVAILABLE as exc:
            await self._link.close()
            raise store.HistoryUnavailableError(f"reading the history: {exc}") from exc

    async def aclose(self) -> None:
        await self._link.close()
