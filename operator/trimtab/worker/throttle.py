"""The pool's model rate limit as one worker keeps it (trimtab.queue.ratelimit): before a
model call it takes the call's share, sleeping through a short wait and handing back a
long one (the step then waits without holding a slot, its retries untouched); after
the call it reports a 429 or a success, which move the pool's rate for every worker."""

from __future__ import annotations

import asyncio

from trimtab.api.v1alpha1 import agentpool
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.metrics import ErrorType
from trimtab.queue import ratelimit, scripts
from trimtab.worker import errors

# A wait up to this long is slept in the slot: cheaper than a trip through the queue.
SLEEP_UP_TO_MS = 2000.0


class Throttle:
    def __init__(
        self, lua: scripts.Scripts, *, namespace: str, pool: str, spec: agentpool.AgentPoolSpec
    ) -> None:
        self.lua, self.namespace, self.pool = lua, namespace, pool
        self.limit = spec.model.rate_limit

    def applies(self, step: awf.Step) -> bool:
        return self.limit is not None and step.kind != "tool"

    async def turn(self, step: awf.Step, tokens: int, now_ms: float) -> float | None:
        """None once the call may go; or how long (ms) it must wait, when too long to
        sleep here."""
        if self.limit is None or not self.applies(step):
            return None
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            at = now_ms + (loop.time() - start) * 1000
            wait = await ratelimit.take(
                self.lua,
                self.namespace,
                self.pool,
                now_ms=at,
                requests_per_minute=self.limit.requests_per_minute,
                tokens_per_minute=self.limit.tokens_per_minute,
                tokens=tokens,
            )
            if wait <= 0:
                return None
            if wait > SLEEP_UP_TO_MS:
                return wait
            await asyncio.sleep(wait / 1000)

    async def report(
        self, step: awf.Step, error: errors.StepError | None, *, taken_ms: float, now_ms: float
    ) -> None:
        """How the call that took its turn at `taken_ms` went: a 429 or a success."""
        if not self.applies(step):
            return
        throttled = error is not None and error.error_type is ErrorType.HTTP_429
        if throttled:
            await ratelimit.report(
                self.lua, self.namespace, self.pool, throttled=True, now_ms=now_ms
            )
        elif error is None:
            await ratelimit.report(
                self.lua, self.namespace, self.pool, throttled=False, now_ms=taken_ms
            )
