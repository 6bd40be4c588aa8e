"""Where a pool's pods run: node labels, tolerations and node affinity per capacity.

Each provider marks spot capacity its own way; a `Preset` records the labels that select
spot (and, where they exist, on-demand) nodes and the taints spot nodes usually carry.
`placement_for` turns a pool's PlacementSpec into the scheduling fields of its pods, and
`merge_affinity` folds the user's own core/v1 Affinity in.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from trimtab.api.v1alpha1 import agentpool

KARPENTER_LABEL = "karpenter.sh/capacity-type"
EKS_LABEL = "eks.amazonaws.com/capacityType"
GKE_LABEL = "cloud.google.com/gke-spot"
AKS_LABEL = "kubernetes.azure.com/scalesetpriority"
LOCAL_SPOT_TAINT = "trimtab.io/spot"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"
SPOT_PREFERENCE_WEIGHT = 100

Capacity = Literal["Spot", "OnDemand", "Mixed"]


@dataclasses.dataclass(frozen=True)
class Placement:
    """The scheduling fields of a pool's pods, and the capacity they will run on."""

    node_selector: Mapping[str, str]
    tolerations: tuple[Mapping[str, Any], ...]
    node_affinity: Mapping[str, Any] | None  # a core/v1 NodeAffinity
    capacity: Capacity


@dataclasses.dataclass(frozen=True)
class Preset:
    """How one provider marks capacity. Empty `on_demand_labels` means on-demand nodes
    simply lack the spot label, so on-demand is "not spot" via node affinity."""

    spot_labels: Mapping[str, str]
    on_demand_labels: Mapping[str, str]
    spot_tolerations: tuple[Mapping[str, Any], ...]


def _no_schedule(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "operator": "Equal", "value": value, "effect": "NoSchedule"}


# Karpenter labels every node it launches with karpenter.sh/capacity-type spot|on-demand;
# spot NodePools are commonly tainted with the same key, so tolerating it is harmless.
KARPENTER = Preset(
    spot_labels={KARPENTER_LABEL: "spot"},
    on_demand_labels={KARPENTER_LABEL: "on-demand"},
    spot_tolerations=(_no_schedule(KARPENTER_LABEL, "spot"),),
)
# auto: Karpenter's labels, which the local kwok cluster uses too, plus the local dev
# taint trimtab.io/spot=true:NoSchedule that fences off its simulated spot nodes.
AUTO = dataclasses.replace(
    KARPENTER,
    spot_tolerations=(*KARPENTER.spot_tolerations, _no_schedule(LOCAL_SPOT_TAINT, "true")),
)
# EKS managed node groups label nodes SPOT|ON_DEMAND; spot groups are often tainted alike.
EKS = Preset(
    spot_labels={EKS_LABEL: "SPOT"},
    on_demand_labels={EKS_LABEL: "ON_DEMAND"},
    spot_tolerations=(_no_schedule(EKS_LABEL, "SPOT"),),
)
# GKE labels (and usually taints) spot nodes cloud.google.com/gke-spot=true; on-demand
# nodes carry no such label.
GKE = Preset(
    spot_labels={GKE_LABEL: "true"},
    on_demand_labels={},
    spot_tolerations=(_no_schedule(GKE_LABEL, "true"),),
)
# AKS spot node pools are labelled and always tainted scalesetpriority=spot:NoSchedule;
# regular pools carry no spot label.
AKS = Preset(
    spot_labels={AKS_LABEL: "spot"},
    on_demand_labels={},
    spot_tolerations=(_no_schedule(AKS_LABEL, "spot"),),
)
PRESETS: Mapping[str, Preset] = {
    "auto": AUTO,
    "karpenter": KARPENTER,
    "eks": EKS,
    "gke": GKE,
    "aks": AKS,
}


def preset_for(spec: agentpool.PlacementSpec) -> Preset:
    """The provider's preset; provider custom takes its labels from spec.custom."""
    if spec.provider != "custom":
        return PRESETS[spec.provider]
    custom = spec.custom or agentpool.CustomCapacity()
    return Preset(
        spot_labels=dict(custom.spot_node_selector),
        on_demand_labels=dict(custom.on_demand_node_selector),
        spot_tolerations=tuple(t.to_wire() for t in custom.spot_tolerations),
    )


def placement_for(spec: agentpool.PlacementSpec, *, fallback_active: bool) -> Placement:
    """Scheduling fields for the pool's capacity, with the user's extras merged in.

    `fallback_active` (Spot pods stayed unschedulable too long) moves a Spot pool to
    on-demand; it does not affect SpotPreferred, which may use on-demand anyway.
    """
    preset = preset_for(spec)
    if spec.capacity == "Spot" and not fallback_active:
        chosen = Placement(dict(preset.spot_labels), preset.spot_tolerations, None, "Spot")
    elif spec.capacity == "SpotPreferred":
        prefer = _prefer(preset.spot_labels)
        chosen = Placement({}, preset.spot_tolerations, prefer, "Mixed")
    else:
        chosen = _on_demand(preset)
    return _with_user_extras(chosen, spec)


def _on_demand(preset: Preset) -> Placement:
    if preset.on_demand_labels:
        return Placement(dict(preset.on_demand_labels), (), None, "OnDemand")
    return Placement({}, (), _avoid(preset.spot_labels), "OnDemand")


def _avoid(spot_labels: Mapping[str, str]) -> dict[str, Any] | None:
    """Required affinity for "not spot": any one spot label missing or different. NotIn
    also matches nodes without the label, which is how on-demand nodes look."""
    if not spot_labels:
        return None
    terms = [
        {"matchExpressions": [{"key": k, "operator": "NotIn", "values": [v]}]}
        for k, v in spot_labels.items()
    ]
    return {REQUIRED: {"nodeSelectorTerms": terms}}


def _prefer(spot_labels: Mapping[str, str]) -> dict[str, Any] | None:
    if not spot_labels:
        return None
    expressions = [{"key": k, "operator": "In", "values": [v]} for k, v in spot_labels.items()]
    term = {"weight": SPOT_PREFERENCE_WEIGHT, "preference": {"matchExpressions": expressions}}
    return {PREFERRED: [term]}


def _with_user_extras(chosen: Placement, spec: agentpool.PlacementSpec) -> Placement:
    """User node labels win on conflicts (they asked for them); tolerations only add."""
    user_tolerations = (t.to_wire() for t in spec.tolerations)
    return dataclasses.replace(
        chosen,
        node_selector={**chosen.node_selector, **spec.node_selector},
        tolerations=_dedupe([*chosen.tolerations, *user_tolerations]),
    )


def _dedupe(tolerations: Iterable[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    seen: dict[str, Mapping[str, Any]] = {}
    for toleration in tolerations:
        seen.setdefault(json.dumps(toleration, sort_keys=True), toleration)
    return tuple(seen.values())


def merge_affinity(
    user: Mapping[str, Any] | None, node_affinity: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The pod's core/v1 Affinity: the user's pod (anti-)affinity as given, node affinity
    merged so that both the user's and the capacity's requirements hold."""
    out = {k: copy.deepcopy(v) for k, v in (user or {}).items() if k != "nodeAffinity"}
    merged = _merge_node_affinity((user or {}).get("nodeAffinity"), node_affinity)
    if merged:
        out["nodeAffinity"] = merged
    return out or None


def _merge_node_affinity(
    user: Mapping[str, Any] | None, ours: Mapping[str, Any] | None
) -> dict[str, Any]:
    user, ours = user or {}, ours or {}
    out: dict[str, Any] = {}
    required = _and_terms(_terms(user), _terms(ours))
    if required:
        out[REQUIRED] = {"nodeSelectorTerms": required}
    preferred = [*ours.get(PREFERRED, []), *user.get(PREFERRED, [])]
    if preferred:
        out[PREFERRED] = copy.deepcopy(preferred)
    return out


def _terms(node_affinity: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((node_affinity.get(REQUIRED) or {}).get("nodeSelectorTerms") or [])


def _and_terms(
    left: list[Mapping[str, Any]], right: list[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Terms are ORed and a term's expressions ANDed, so "left and right" is every
    pairing of one left term with one right term."""
    if not left or not right:
        return [copy.deepcopy(dict(t)) for t in left or right]
    return [_and_term(a, b) for a in left for b in right]


def _and_term(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in ("matchExpressions", "matchFields"):
        joined = [*a.get(field, []), *b.get(field, [])]
        if joined:
            out[field] = copy.deepcopy(joined)
    return out
