"""The standard line-up a simulation compares a pool spec with: the spec itself, KEDA
as installed (a ScaledObject on the stream's lag with KEDA's and the HPA's defaults),
KEDA as a careful user tunes it, and an HPA on CPU. Shared by `trimtab simulate
scaling` and the autoscaling benchmark, so both compare with the same peers.

KEDA tuned: 5 s polling and a 60 s cooldown; two triggers, lag and pending entries,
each targeting the pool's concurrency per replica, so in-flight work holds replicas
(lag alone drops to zero while every step is running); an HPA behaviour that may
grow ten-fold per 15 s and scales down after 60 s. The HPA sync period (15 s) is a
controller-manager flag a ScaledObject cannot change.
"""

from __future__ import annotations

from trimtab.api.v1alpha1.agentpool import AgentPoolSpec
from trimtab.sim.fleet import compare, hpa, peers


def trimtab(name: str, spec: AgentPoolSpec) -> compare.Contender:
    scaling = spec.scaling
    start = max(scaling.min_replicas, scaling.standby)
    return compare.Contender(name, lambda: peers.Trimtab(spec), start)


def keda_default(max_replicas: int) -> compare.Contender:
    config = peers.KedaConfig(behavior=hpa.Behavior(max_replicas=max_replicas))
    return compare.Contender("KEDA default", lambda: peers.Keda(config), 0)


def keda_tuned(max_replicas: int, *, slots: int) -> compare.Contender:
    config = peers.KedaConfig(
        polling_seconds=5.0,
        cooldown_seconds=60.0,
        lag_target=float(slots),
        pending_target=float(slots),
        behavior=hpa.Behavior(
            down_window=60.0,
            up_policies=(hpa.Policy(hpa.PERCENT, 900, 15.0), hpa.Policy(hpa.PODS, 100, 15.0)),
            max_replicas=max_replicas,
        ),
    )
    return compare.Contender("KEDA tuned", lambda: peers.Keda(config), 0)


def hpa_cpu(max_replicas: int) -> compare.Contender:
    config = peers.CpuConfig(behavior=hpa.Behavior(max_replicas=max_replicas))
    return compare.Contender("HPA on CPU", lambda: peers.HpaCpu(config), 1)


def peers_of(spec: AgentPoolSpec, *, slots: int) -> list[compare.Contender]:
    top = spec.scaling.max_replicas
    return [keda_default(top), keda_tuned(top, slots=slots), hpa_cpu(top)]
