"""The worker's readiness, as its pod's probe reads it: ready only while it reaches
Redis and is not draining."""

from __future__ import annotations

import pytest

from trimtab.worker import serving

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("last_ok", "draining", "now", "reason"),
    [
        pytest.param(None, False, 10.0, "not connected to Redis yet", id="never-connected"),
        pytest.param(9.0, False, 10.0, None, id="ready"),
        pytest.param(9.0, True, 10.0, "draining", id="draining"),
        pytest.param(1.0, False, 10.0, "Redis unreachable for 9 s", id="redis-gone"),
        pytest.param(5.0, False, 10.0, None, id="at-the-limit"),
    ],
)  # fmt: skip
def test_readiness(last_ok: float | None, draining: bool, now: float, reason: str | None) -> None:
    why = serving.Readiness(last_ok=last_ok, draining=draining).why_not(now)
    assert (why is None) is (reason is None)
    if reason is not None:
        assert why is not None
        assert why.startswith(reason)


async def test_endpoints_answer() -> None:
    """The app serves /readyz (503 until Redis was reached), /healthz and /metrics."""
    from aiohttp.test_utils import TestClient, TestServer  # noqa: PLC0415

    readiness = serving.Readiness()
    async with TestClient(TestServer(serving.app(readiness))) as client:
        assert (await client.get("/readyz")).status == 503
        readiness.reached_redis()
        assert (await client.get("/readyz")).status == 200
        assert (await client.get("/healthz")).status == 200
        metrics = await client.get("/metrics")
        assert metrics.status == 200
        assert "text/plain" in metrics.headers["Content-Type"]
        openmetrics = await client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        assert "application/openmetrics-text" in openmetrics.headers["Content-Type"]
        assert (await openmetrics.text()).rstrip().endswith("# EOF"), "exemplars can be read"
