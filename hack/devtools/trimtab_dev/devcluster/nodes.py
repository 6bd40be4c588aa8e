"""Simulated nodes: the Node objects kwok manages, as pure manifest builders.

Spot nodes carry the Karpenter capacity-type label and a NoSchedule taint, the way
real spot capacity is usually fenced off, so placement logic meets the same labels
and taints here as in a cloud cluster.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from trimtab_dev.devcluster import components

CAPACITY_LABEL = "karpenter.sh/capacity-type"
SPOT_TAINT_KEY = "trimtab.io/spot"
ZONE_LABEL = "topology.kubernetes.io/zone"
ZONES = ("local-a", "local-b")


@dataclasses.dataclass(frozen=True)
class NodeShape:
    """Allocatable resources of one simulated node."""

    cpu: str = "8"
    memory: str = "32Gi"
    pods: str = "110"


def node_manifest(
    name: str, *, capacity: str, zone: str, shape: NodeShape = NodeShape()
) -> dict[str, Any]:
    """A Node kwok will adopt: labelled with its capacity type, tainted when spot."""
    taints = []
    if capacity == "spot":
        taints.append({"key": SPOT_TAINT_KEY, "value": "true", "effect": "NoSchedule"})
    resources = {"cpu": shape.cpu, "memory": shape.memory, "pods": shape.pods}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {
                components.KWOK_NODE_ANNOTATION: components.KWOK_NODE_ANNOTATION_VALUE,
                "node.alpha.kubernetes.io/ttl": "0",
            },
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "kwok-8x32",
                "topology.kubernetes.io/region": "local",
                ZONE_LABEL: zone,
                CAPACITY_LABEL: capacity,
                "type": "kwok",
            },
        },
        "spec": {"taints": taints},
        "status": {"allocatable": resources, "capacity": resources},
    }


def default_nodes(*, spot: int = 2, on_demand: int = 1) -> list[dict[str, Any]]:
    """The default simulated fleet, spread over two zones."""
    nodes = []
    for i in range(on_demand):
        nodes.append(
            node_manifest(f"kwok-on-demand-{i}", capacity="on-demand", zone=ZONES[i % len(ZONES)])
        )
    for i in range(spot):
        nodes.append(node_manifest(f"kwok-spot-{i}", capacity="spot", zone=ZONES[i % len(ZONES)]))
    return nodes
