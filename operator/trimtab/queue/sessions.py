"""A session's conversation memory: its turns as chat messages, in the state store.

A session is a conversation that outlives one run: runs submitted with its id see its
earlier turns (steps with memory.session) and add theirs when they succeed. It is kept
as one compressed state document (trimtab.queue.state) whose TTL restarts at every
write, so a conversation nobody continues expires on its own. Two runs of one session
may finish at once: an append retries on a concurrent write (WATCH), so neither turn
is lost. An append names its run, and a run's turns are added once however often it
is appended (the worker appends before the completion that ends the run, so a
redelivered last step appends again). At most MAX_MESSAGES are kept, the oldest
dropped first, and the ids of the last MAX_RUNS runs that added turns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from redis import asyncio as aioredis
from redis.exceptions import WatchError

from trimtab.queue import keys, state

SESSION_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,253}$")
MAX_MESSAGES = 400
MAX_RUNS = 200
_APPEND_TRIES = 20


class InvalidSessionError(ValueError):
    """A session id that is not 1-253 letters, digits, '.', '_', ':' or '-'."""


def check_session(session: str) -> str:
    if not SESSION_PATTERN.fullmatch(session):
        raise InvalidSessionError(
            f"session id {session!r}: use 1-253 letters, digits, '.', '_', ':' or '-'"
        )
    return session


class SessionStore:
    """The sessions of one namespace, on a binary client (connection.connect_binary)."""

    def __init__(self, client: aioredis.Redis, namespace: str) -> None:
        self.client, self.namespace = client, namespace

    async def messages(self, session: str) -> list[dict[str, Any]]:
        """The session's turns, oldest first; none for a new or expired session."""
        blob: Any = await self.client.get(keys.state(self.namespace, session))
        doc = None if blob is None else state.decode(bytes(blob))
        return list(doc.get("messages", [])) if isinstance(doc, dict) else []

    async def append(
        self,
        session: str,
        messages: Sequence[dict[str, Any]],
        *,
        ttl_seconds: int,
        run_id: str | None = None,
    ) -> bool:
        """Add `messages` after the session's, and restart its TTL; False when run
        `run_id` added its turns already (nothing changes)."""
        key = keys.state(self.namespace, session)
        for _ in range(_APPEND_TRIES):
            async with self.client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    blob: Any = await pipe.get(key)
                    doc = None if blob is None else state.decode(bytes(blob))
                    doc = doc if isinstance(doc, dict) else {}
                    added = list(doc.get("runs", []))
                    if run_id is not None and run_id in added:
                        return False
                    kept = [*doc.get("messages", []), *messages][-MAX_MESSAGES:]
                    added = [*added, run_id][-MAX_RUNS:] if run_id is not None else added
                    pipe.multi()  # type: ignore[no-untyped-call]
                    body = {"messages": kept, "runs": added}
                    pipe.set(key, state.encode(body), ex=ttl_seconds)
                    await pipe.execute()
                    return True
                except WatchError:
                    continue
        raise RuntimeError(f"session {session}: {_APPEND_TRIES} concurrent writes in a row")

    async def delete(self, session: str) -> bool:
        return bool(await self.client.delete(keys.state(self.namespace, session)))
