"""The operator's settings, from flags or the environment its Deployment sets."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

import trimtab
from trimtab.reconcile import policy
from trimtab.reconcile.agentpool import redis_access

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_WORKER_IMAGE = f"ghcr.io/trimtab/trimtab:{trimtab.__version__}"


@dataclasses.dataclass(frozen=True)
class OperatorConfig:
    redis_url: str = DEFAULT_REDIS_URL
    worker_image: str = DEFAULT_WORKER_IMAGE
    worker_redis_url: str | None = None  # as workers reach Redis, when it differs
    # Secrets each pool's namespace holds for its workers: Redis password, TLS CA bundle.
    worker_redis_password_secret: str | None = None
    worker_redis_password_key: str = "password"  # noqa: S105 - a key name in the Secret
    worker_redis_ca_secret: str | None = None
    metrics_port: int = 8080
    scale_interval_seconds: float = 1.0
    status_interval_seconds: float = 10.0
    # Watch namespaces and CRDs to notice new ones: cluster-wide only. An operator given
    # its namespaces needs neither (nor the cluster-wide permission to watch them).
    scan_cluster: bool = True
    # The admin's allow-lists (trimtab.reconcile.policy); empty: anything.
    allowed_images: tuple[str, ...] = ()
    allowed_endpoints: tuple[str, ...] = ()
    allowed_tool_urls: tuple[str, ...] = ()
    # The OTEL_* variables every worker gets (trimtab.telemetry): the admin's tracing
    # settings, never a pool's (its env may not name OTEL_*).
    worker_tracing_env: tuple[tuple[str, str], ...] = ()
    # The history database (trimtab.history): every ended run is archived there.
    history_url: str | None = None
    history_password: str | None = None  # when the URL carries none (from a Secret)

    @property
    def policy(self) -> policy.Policy:
        return policy.Policy(
            images=self.allowed_images,
            endpoints=self.allowed_endpoints,
            tool_urls=self.allowed_tool_urls,
        )

    @property
    def worker_redis(self) -> redis_access.RedisAccess:
        return redis_access.RedisAccess(
            url=self.worker_redis_url or self.redis_url,
            password_secret=self.worker_redis_password_secret,
            password_key=self.worker_redis_password_key,
            ca_secret=self.worker_redis_ca_secret,
        )


def from_env(env: Mapping[str, str] | None = None) -> OperatorConfig:
    env = os.environ if env is None else env
    return OperatorConfig(
        redis_url=env.get("TRIMTAB_REDIS_URL", DEFAULT_REDIS_URL),
        worker_image=env.get("TRIMTAB_WORKER_IMAGE", DEFAULT_WORKER_IMAGE),
        worker_redis_url=env.get("TRIMTAB_WORKER_REDIS_URL") or None,
        worker_redis_password_secret=env.get("TRIMTAB_WORKER_REDIS_PASSWORD_SECRET") or None,
        worker_redis_password_key=env.get("TRIMTAB_WORKER_REDIS_PASSWORD_KEY") or "password",
        worker_redis_ca_secret=env.get("TRIMTAB_WORKER_REDIS_CA_SECRET") or None,
        metrics_port=int(env.get("TRIMTAB_METRICS_PORT", "8080")),
        scale_interval_seconds=float(env.get("TRIMTAB_SCALE_INTERVAL_SECONDS", "1")),
        status_interval_seconds=float(env.get("TRIMTAB_STATUS_INTERVAL_SECONDS", "10")),
        scan_cluster=env.get("TRIMTAB_SCAN_CLUSTER", "1") != "0",
        allowed_images=_listed(env.get("TRIMTAB_ALLOWED_IMAGES", "")),
        allowed_endpoints=_listed(env.get("TRIMTAB_ALLOWED_ENDPOINTS", "")),
        allowed_tool_urls=_listed(env.get("TRIMTAB_ALLOWED_TOOL_URLS", "")),
        worker_tracing_env=worker_tracing_env(env),
        history_url=env.get("TRIMTAB_HISTORY_URL") or None,
        history_password=env.get("TRIMTAB_HISTORY_PASSWORD") or None,
    )


# Passed on to workers as the operator has them: how to sample and what to add to the
# resource. Headers are not (they may hold a collector's credentials, and a pool's
# author can read its Deployment): send workers' spans to an in-cluster collector.
TRACING_PASSED_ON = ("OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_BSP_SCHEDULE_DELAY")


def worker_tracing_env(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Workers trace when the operator does: to TRIMTAB_WORKER_OTEL_ENDPOINT (as pods
    reach the collector), else the operator's own OTLP endpoint, sampled alike."""
    endpoint = env.get("TRIMTAB_WORKER_OTEL_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint or env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return ()
    passed = [(name, env[name]) for name in TRACING_PASSED_ON if env.get(name)]
    return (("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint), *passed)


def _listed(text: str) -> tuple[str, ...]:
    """A comma-separated list, blanks dropped."""
    return tuple(item.strip() for item in text.split(",") if item.strip())
