"""Circuit breakers on the endpoints a pool calls, shared by all its workers through
Redis (breaker.lua holds the state machine), so one worker's failures protect the
others and a failing endpoint is left alone for its cool-down instead of hammered.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from typing import Any

from trimtab.api.v1alpha1 import agentpool
from trimtab.queue import keys, scripts, wire

MODEL_ENDPOINT = "model"
State = wire.BreakerState  # spelt once, in wire; callers say breaker.State


@dataclasses.dataclass(frozen=True)
class Verdict:
    allowed: bool
    state: State
    retry_at_ms: float  # when a denied call may try again


def tool_endpoint(url: str) -> str:
    """The breaker name of an HTTP tool: its scheme, host and port."""
    parts = urllib.parse.urlsplit(url)
    return f"tool:{parts.scheme}://{parts.netloc}"


class Breaker:
    """One endpoint's breaker for one pool."""

    def __init__(
        self,
        lua: scripts.Scripts,
        *,
        namespace: str,
        pool: str,
        endpoint: str,
        spec: agentpool.BreakerSpec,
    ) -> None:
        self.lua, self.endpoint, self.spec = lua, endpoint, spec
        self.key = keys.pool_breaker(namespace, pool, endpoint)

    def _args(self, op: wire.BreakerOp, now_ms: float) -> list[Any]:
        s = self.spec
        return [
            op,
            now_ms,
            s.failure_threshold,
            s.window_seconds * 1000,
            s.open_seconds * 1000,
            s.half_open_probes,
            s.failure_rate,
        ]

    async def allow(self, now_ms: float) -> Verdict:
        verdict, state, retry_at = await self.lua.call(
            "breaker", [self.key], self._args(wire.BreakerOp.ALLOW, now_ms)
        )
        allowed = wire.BreakerVerdict(verdict) is wire.BreakerVerdict.ALLOW
        return Verdict(allowed=allowed, state=State(state), retry_at_ms=float(retry_at))

    async def record(self, *, ok: bool, now_ms: float) -> State | None:
        """Report a call's outcome; returns the new state when this changed it."""
        reply = str(
            await self.lua.call(
                "breaker",
                [self.key],
                self._args(wire.BreakerOp.SUCCESS if ok else wire.BreakerOp.FAILURE, now_ms),
            )
        )
        return State(reply.removeprefix("changed:")) if reply.startswith("changed:") else None
