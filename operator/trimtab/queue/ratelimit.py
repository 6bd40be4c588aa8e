"""A pool's model rate limit in Redis (ratelimit.lua), shared by all its workers.

A worker takes a call's share (one request, its worst-case tokens) before calling the
model and is told how long to wait when the buckets are empty; it reports a 429, which
halves the pool's rate for everyone, and successes, which win it back. Spreading calls
below the provider's limit costs less than meeting its 429s: no failed call, no
Retry-After wait holding a slot, no retry budget spent.
"""

from __future__ import annotations

from trimtab.queue import keys, scripts, wire


async def take(
    lua: scripts.Scripts,
    namespace: str,
    pool: str,
    *,
    now_ms: float,
    requests_per_minute: int | None,
    tokens_per_minute: int | None,
    tokens: int,
) -> float:
    """Take one call's share; returns 0, or the milliseconds to wait before asking again."""
    reply = await _call(lua, namespace, pool, wire.RateOp.TAKE, now_ms, requests_per_minute,
                        tokens_per_minute, tokens)  # fmt: skip
    return float(reply[1]) if wire.Reply(reply[0]) is wire.Reply.WAIT else 0.0


async def report(
    lua: scripts.Scripts, namespace: str, pool: str, *, throttled: bool, now_ms: float
) -> None:
    """How a call went: a 429 (throttled) halves the pool's rate and empties its buckets,
    a success wins some of the rate back."""
    op = wire.RateOp.THROTTLED if throttled else wire.RateOp.OK
    await _call(lua, namespace, pool, op, now_ms, None, None, 0)


async def _call(
    lua: scripts.Scripts,
    namespace: str,
    pool: str,
    op: wire.RateOp,
    now_ms: float,
    rpm: int | None,
    tpm: int | None,
    tokens: int,
) -> list[str]:
    args = [op.value, now_ms, "" if rpm is None else rpm, "" if tpm is None else tpm, tokens]
    reply: list[str] = await lua.call("ratelimit", [keys.pool_rate(namespace, pool)], args)
    return reply
