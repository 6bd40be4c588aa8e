"""Cancelling a run on request (the API, the SDK, `trimtab runs cancel`): cancel.lua ends
it `cancelled` atomically, wherever its steps are. Workers running one of its steps stop
it within a heartbeat (trimtab.worker.loop), so a long model call is abandoned rather
than waited for, and its result, should it arrive, is discarded as stale.
"""

from __future__ import annotations

from typing import Any

from redis import asyncio as aioredis

from trimtab.queue import keys, scripts, wire

REASON = "cancelled: the run was cancelled before it ended"


async def cancel(
    client: aioredis.Redis,
    lua: scripts.Scripts,
    namespace: str,
    run_id: str,
    *,
    now_ms: float,
    reason: str = REASON,
) -> wire.Reply:
    """CANCELLED; ENDED when the run had ended already (nothing changes); GONE when
    there is no such run (never, or expired)."""
    workflow: Any = await client.hget(keys.run(namespace, run_id), wire.RunField.WORKFLOW)
    if workflow is None:
        return wire.Reply.GONE
    reply = await lua.call(
        "cancel",
        [
            keys.run(namespace, run_id),
            keys.run_events(namespace, run_id),
            keys.deadlines(namespace),
            keys.workflow_stats(namespace, workflow),
            keys.review(namespace),
            keys.ended_runs(namespace),
        ],
        [run_id, reason[:2000], now_ms],
    )
    return wire.Reply(reply)
