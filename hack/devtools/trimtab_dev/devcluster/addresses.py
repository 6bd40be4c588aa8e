"""Every address, range and host-visible name of one local cluster, derived from its slot.

Several clusters may run on one machine, so whatever they would share (loopback ports,
the real nodes' host bridge and addresses, the pod ranges routed on the host) comes
from a small per-cluster number, the slot: 0 for the default cluster (today's ports),
1-15 for any other name, from a hash of the name. Two names may hash to the same slot;
`up` then fails on a port or a bridge already in use rather than sharing them.

The real nodes live on 198.51.100.0/24 (TEST-NET-2, RFC 5737: never routed anywhere),
a /28 per slot: the host's end of the bridge is .1, node i is .2+i. The host's own
network (here 192.0.2.0/24 on eth0) is never touched.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import zlib

SLOTS = 16
NODE_NET = ipaddress.IPv4Network("198.51.100.0/24")
SLOT_PREFIX = 28
# The simulated nodes' pods get kwok's fake IPs from here when a node has no podCIDR yet:
# outside every slot's node pod range, so a fake IP can never equal a real pod's.
KWOK_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
KUBELET_PORT = 10250
KUBELET_HEALTHZ_PORT = 10248
KUBE_PROXY_HEALTHZ_PORT = 10256


def slot_for(name: str, *, default_name: str) -> int:
    """0 for the default cluster, 1..SLOTS-1 for any other name (stable across runs)."""
    if name == default_name:
        return 0
    return 1 + zlib.crc32(name.encode()) % (SLOTS - 1)


@dataclasses.dataclass(frozen=True)
class Network:
    """The real-node network of the cluster in `slot`."""

    slot: int

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return list(NODE_NET.subnets(new_prefix=SLOT_PREFIX))[self.slot]

    @property
    def host_address(self) -> str:
        """The host's address on the node bridge: the apiserver and host services bind it."""
        return str(self.subnet[1])

    @property
    def max_nodes(self) -> int:
        return self.subnet.num_addresses - 3  # network, host, broadcast

    def node_address(self, index: int) -> str:
        if not 0 <= index < self.max_nodes:
            raise ValueError(f"real node index {index} outside 0..{self.max_nodes - 1}")
        return str(self.subnet[2 + index])

    @property
    def bridge(self) -> str:
        return f"trimtab{self.slot}"

    def veth(self, index: int) -> str:
        """The host end of node `index`'s link (interface names stop at 15 characters)."""
        return f"trimtab{self.slot}n{index}"

    @property
    def cluster_cidr(self) -> str:
        """The controller-manager's pod range; it hands each node a /24 of it."""
        return f"10.{224 + self.slot}.0.0/16"
