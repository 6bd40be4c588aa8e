"""A worker's HTTP endpoints on its metrics port: `/metrics` for Prometheus, `/readyz`
for the kubelet's readiness probe, `/healthz` for liveness.

Ready means the worker can take steps now: it reached Redis within the last
READY_WITHIN_SECONDS (a claim, or the promotion of due retries every 0.2 s) and it is not
draining. A worker that cannot reach Redis, or that was asked to stop, leaves its
Service's endpoints and stops counting as Ready, so the Deployment's ready count (which
the autoscaler measures its start-up time on) says what really serves.
"""

from __future__ import annotations

import dataclasses
import time

import prometheus_client
from aiohttp import web
from prometheus_client import exposition

READY_WITHIN_SECONDS = 5.0


@dataclasses.dataclass
class Readiness:
    """What /readyz answers from; the worker loop keeps it current."""

    last_ok: float | None = None  # monotonic time Redis last answered
    draining: bool = False

    def reached_redis(self) -> None:
        self.last_ok = time.monotonic()

    def why_not(self, now: float) -> str | None:
        """None when ready, else the reason, for the probe's body and the logs."""
        if self.draining:
            return "draining: finishing in-flight steps, taking no new ones"
        if self.last_ok is None:
            return "not connected to Redis yet"
        if now - self.last_ok > READY_WITHIN_SECONDS:
            return f"Redis unreachable for {now - self.last_ok:.0f} s"
        return None


def app(readiness: Readiness) -> web.Application:
    async def ready(_: web.Request) -> web.Response:
        reason = readiness.why_not(time.monotonic())
        return web.Response(status=503 if reason else 200, text=(reason or "ready") + "\n")

    async def live(_: web.Request) -> web.Response:
        return web.Response(text="alive\n")

    async def scrape(request: web.Request) -> web.Response:
        # OpenMetrics when the scraper asks for it (Prometheus does, to read exemplars:
        # the trace ids on the worker's histograms); the text format otherwise.
        encode, content_type = exposition.choose_encoder(request.headers.get("Accept", ""))
        body = encode(prometheus_client.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": content_type})

    served = web.Application()
    served.router.add_get("/readyz", ready)
    served.router.add_get("/healthz", live)
    served.router.add_get("/metrics", scrape)
    return served


async def start(readiness: Readiness, port: int) -> web.AppRunner:
    runner = web.AppRunner(app(readiness), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()  # noqa: S104 - probed and scraped
    return runner
