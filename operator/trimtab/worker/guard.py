"""The worker's side of the circuit breakers: ask before calling an endpoint, report
how the call went. Only endpoint failures count (5xx, timeouts, refused connections):
a 429 is the endpoint working as designed, and invalid output is the model's content,
not its health. Successes are reported only while a breaker is not closed, so a
healthy endpoint costs one Redis call per step, not two.
"""

from __future__ import annotations

from trimtab import metrics as metrics_mod
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import breaker, connection, scripts
from trimtab.worker import errors, settings

ENDPOINT_FAILURES = frozenset(
    {metrics_mod.ErrorType.HTTP_5XX, metrics_mod.ErrorType.TIMEOUT, metrics_mod.ErrorType.CONNECT}
)
GAUGE = {
    breaker.State.CLOSED: metrics_mod.BreakerState.CLOSED,
    breaker.State.HALF_OPEN: metrics_mod.BreakerState.HALF_OPEN,
    breaker.State.OPEN: metrics_mod.BreakerState.OPEN,
}


def endpoint_of(step: awf.Step) -> str:
    if step.kind == "tool" and step.tool is not None:
        return breaker.tool_endpoint(step.tool.url)
    return breaker.MODEL_ENDPOINT


class Guards:
    """The breakers of one worker's pool, one per endpoint it has called."""

    def __init__(
        self,
        cfg: settings.WorkerSettings,
        *,
        client: connection.Redis,
        lua: scripts.Scripts,
        metrics: metrics_mod.Metrics,
    ) -> None:
        self.cfg, self.client, self.lua, self.metrics = cfg, client, lua, metrics
        self._breakers: dict[str, breaker.Breaker] = {}

    def _breaker(self, endpoint: str) -> breaker.Breaker:
        if endpoint not in self._breakers:
            self._breakers[endpoint] = breaker.Breaker(
                self.lua,
                namespace=self.cfg.namespace,
                pool=self.cfg.pool,
                endpoint=endpoint,
                spec=self.cfg.spec.breaker,
            )
        return self._breakers[endpoint]

    async def check(self, step: awf.Step, now_ms: float) -> breaker.Verdict:
        return await self._breaker(endpoint_of(step)).allow(now_ms)

    async def record(
        self,
        step: awf.Step,
        verdict: breaker.Verdict,
        error: errors.StepError | None,
        now_ms: float,
    ) -> None:
        failed = error is not None and error.error_type in ENDPOINT_FAILURES
        if not failed and verdict.state is breaker.State.CLOSED:
            return
        endpoint = endpoint_of(step)
        changed = await self._breaker(endpoint).record(ok=not failed, now_ms=now_ms)
        if changed is not None:
            kind = (
                metrics_mod.EndpointKind.MODEL
                if endpoint == breaker.MODEL_ENDPOINT
                else metrics_mod.EndpointKind.TOOL
            )
            self.metrics.breaker_changed(
                self.cfg.namespace, self.cfg.pool, endpoint_kind=kind, state=GAUGE[changed]
            )
