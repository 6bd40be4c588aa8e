"""The real nodes of a local cluster: names, addresses, labels and taints, as pure values.

A real node is a kubelet with its own containerd that runs pods as containers, beside
kwok's simulated nodes. It is labelled like the capacity it stands for, and tainted so
that only pods meant to run for real land on it: they tolerate `trimtab.io/real-node`
and select its label (`placement` gives both). Node 0 is on-demand; node 1 is spot and
also carries the spot taint the simulated spot nodes carry; further nodes alternate.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from trimtab_dev.devcluster import addresses, nodes

REAL_NODE_LABEL = "trimtab.io/real-node"
REAL_NODE_TAINT_KEY = "trimtab.io/real-node"
REGION_LABEL = "topology.kubernetes.io/region"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"


def _taint(key: str) -> dict[str, str]:
    return {"key": key, "value": "true", "effect": "NoSchedule"}


@dataclasses.dataclass(frozen=True)
class RealNode:
    """One real node: its index on the cluster's node network and its capacity type."""

    index: int
    capacity: str
    ordinal: int  # index among the nodes of the same capacity type

    @property
    def name(self) -> str:
        return f"real-{self.capacity}-{self.ordinal}"

    @property
    def zone(self) -> str:
        return nodes.ZONES[self.ordinal % len(nodes.ZONES)]

    def address(self, network: addresses.Network) -> str:
        return network.node_address(self.index)

    @property
    def labels(self) -> dict[str, str]:
        return {
            nodes.CAPACITY_LABEL: self.capacity,
            nodes.ZONE_LABEL: self.zone,
            REGION_LABEL: "local",
            INSTANCE_TYPE_LABEL: "real-local",
            REAL_NODE_LABEL: "true",
        }

    @property
    def taints(self) -> list[dict[str, str]]:
        taints = [_taint(REAL_NODE_TAINT_KEY)]
        if self.capacity == "spot":
            taints.append(_taint(nodes.SPOT_TAINT_KEY))
        return taints


def real_nodes(count: int) -> list[RealNode]:
    """`count` real nodes: on-demand first, then spot, alternating."""
    out: list[RealNode] = []
    for index in range(count):
        capacity = "on-demand" if index % 2 == 0 else "spot"
        ordinal = sum(1 for n in out if n.capacity == capacity)
        out.append(RealNode(index=index, capacity=capacity, ordinal=ordinal))
    return out


def placement(node: RealNode) -> dict[str, Any]:
    """The pod spec fields that put a pod on `node` and only there: tolerate its taints,
    select its name and the real-node label."""
    return {
        "nodeSelector": {REAL_NODE_LABEL: "true", "kubernetes.io/hostname": node.name},
        "tolerations": [{**t, "operator": "Equal"} for t in node.taints],
    }
