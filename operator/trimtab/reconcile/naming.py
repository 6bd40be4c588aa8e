"""Names and labels of everything the operator creates for a pool, in one place.

Pool names are at most 50 characters (enforced by the CRD), which leaves room for the
suffixes here within the 63 characters of a label value or Service name.
"""

from __future__ import annotations

PART_OF = "trimtab"
COMPONENT_WORKER = "worker"
POOL_LABEL = "trimtab.io/pool"
CAPACITY_LABEL = "trimtab.io/capacity"


def worker_deployment(pool: str) -> str:
    return f"{pool}-worker"


def metrics_service(pool: str) -> str:
    return f"{pool}-metrics"


def disruption_budget(pool: str) -> str:
    return f"{pool}-worker"


def selector_labels(pool: str) -> dict[str, str]:
    """Labels that select the pool's worker pods; stable for the pool's lifetime."""
    return {
        "app.kubernetes.io/name": "trimtab-worker",
        "app.kubernetes.io/instance": pool,
        POOL_LABEL: pool,
    }


def object_labels(pool: str) -> dict[str, str]:
    return {
        **selector_labels(pool),
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/component": COMPONENT_WORKER,
        "app.kubernetes.io/managed-by": "trimtab-operator",
    }


def selector_string(pool: str) -> str:
    """The label selector as the scale subresource wants it in status.selector."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(pool).items()))
