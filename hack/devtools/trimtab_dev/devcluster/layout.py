"""Where a local cluster keeps its state, and which loopback ports it listens on.

A cluster is a directory under the user's state root: PKI, etcd data, logs, pid
files, the admin kubeconfig, each real node's runtime state, and the record of the
changes `up` made to the host. Keeping everything in one place makes `down` exact
(it stops only what that directory's pid files name, and undoes only what its record
lists) and `up` repeatable.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

from trimtab_dev.devcluster import addresses

DEFAULT_NAME = "trimtab"
LOOPBACK = "127.0.0.1"
_SLOT_STRIDE = 100  # ports of slot s are the defaults + 100 s; no two names coincide


@dataclasses.dataclass(frozen=True)
class Ports:
    """Loopback ports; chosen away from the usual defaults so a real cluster can coexist."""

    etcd_client: int = 23790
    etcd_peer: int = 23800
    apiserver: int = 26443
    controller_manager: int = 20257
    scheduler: int = 20259
    kwok: int = 20247

    @classmethod
    def for_slot(cls, slot: int) -> Ports:
        """The default ports shifted by the slot, all below the ephemeral range (32768)."""
        base = cls()
        return cls(**{k: v + _SLOT_STRIDE * slot for k, v in dataclasses.asdict(base).items()})


@dataclasses.dataclass(frozen=True)
class NodePaths:
    """State of one real node: its runtime, kubelet, kube-proxy and network namespace.

    Short relative paths: containerd's sockets must stay under the 108-byte limit."""

    root: pathlib.Path
    containerd_config: pathlib.Path
    containerd_root: pathlib.Path
    containerd_state: pathlib.Path
    containerd_opt: pathlib.Path
    containerd_sock: pathlib.Path
    runc_root: pathlib.Path
    cni_conf_dir: pathlib.Path
    cni_conflist: pathlib.Path
    cni_ipam: pathlib.Path
    kubelet_root: pathlib.Path
    kubelet_config: pathlib.Path
    kubelet_certs: pathlib.Path
    pod_logs: pathlib.Path
    volume_plugins: pathlib.Path
    kubeconfig: pathlib.Path
    kube_proxy_config: pathlib.Path
    netns: pathlib.Path

    @classmethod
    def under(cls, root: pathlib.Path) -> NodePaths:
        return cls(root=root, **{field: root / rel for field, rel in _NODE_FILES.items()})


_NODE_FILES = {
    "containerd_config": "containerd/config.toml",
    "containerd_root": "containerd/root",
    "containerd_state": "containerd/state",
    "containerd_opt": "containerd/opt",
    "containerd_sock": "containerd.sock",
    "runc_root": "runc",
    "cni_conf_dir": "cni/net.d",
    "cni_conflist": "cni/net.d/10-trimtab.conflist",
    "cni_ipam": "cni/ipam",
    "kubelet_root": "kubelet/root",
    "kubelet_config": "kubelet/config.yaml",
    "kubelet_certs": "kubelet/pki",
    "pod_logs": "kubelet/logs",
    "volume_plugins": "kubelet/volume-plugins",
    "kubeconfig": "kubelet/kubeconfig",
    "kube_proxy_config": "kube-proxy.yaml",
    "netns": "netns",
}


@dataclasses.dataclass(frozen=True)
class Layout:
    """Paths of one local cluster's state, its slot, and how many real nodes it runs."""

    name: str
    root: pathlib.Path
    ports: Ports = dataclasses.field(default_factory=Ports)
    slot: int = 0
    real_nodes: int = 0

    @property
    def pki(self) -> pathlib.Path:
        return self.root / "pki"

    @property
    def etcd_data(self) -> pathlib.Path:
        return self.root / "etcd"

    @property
    def logs(self) -> pathlib.Path:
        return self.root / "logs"

    @property
    def pids(self) -> pathlib.Path:
        return self.root / "pids"

    @property
    def kubeconfig(self) -> pathlib.Path:
        return self.root / "kubeconfig"

    @property
    def spec_file(self) -> pathlib.Path:
        """What the last `up` asked for (the number of real nodes)."""
        return self.root / "cluster.json"

    @property
    def host_changes(self) -> pathlib.Path:
        """The record of every change `up` made outside this directory."""
        return self.root / "host-changes.json"

    def node(self, name: str) -> NodePaths:
        return NodePaths.under(self.root / "nodes" / name)

    def component_kubeconfig(self, component: str) -> pathlib.Path:
        return self.root / f"{component}.kubeconfig"

    @property
    def network(self) -> addresses.Network:
        return addresses.Network(self.slot)

    @property
    def host_address(self) -> str | None:
        """The host's address that real nodes' pods reach it on; None without real nodes."""
        return self.network.host_address if self.real_nodes else None

    @property
    def apiserver_address(self) -> str:
        # Pods cannot reach the host's loopback: with real nodes the apiserver moves to
        # the host's address on the node bridge (still reachable from the host itself).
        return self.host_address or LOOPBACK

    @property
    def server_url(self) -> str:
        return f"https://{self.apiserver_address}:{self.ports.apiserver}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.etcd_client}"


def state_root() -> pathlib.Path:
    """The directory that holds every local cluster's state."""
    override = os.environ.get("TRIMTAB_CLUSTER_DIR")
    if override:
        return pathlib.Path(override)
    base = os.environ.get("XDG_STATE_HOME") or str(pathlib.Path.home() / ".local" / "state")
    return pathlib.Path(base) / "trimtab" / "clusters"


def recorded_real_nodes(root: pathlib.Path) -> int | None:
    """The real-node count the cluster at `root` was last brought up with, if recorded."""
    try:
        return int(json.loads((root / "cluster.json").read_text())["real_nodes"])
    except (FileNotFoundError, KeyError, ValueError):
        return None


def layout_for(name: str = DEFAULT_NAME) -> Layout:
    root = state_root() / name
    slot = addresses.slot_for(name, default_name=DEFAULT_NAME)
    return Layout(
        name=name,
        root=root,
        ports=Ports.for_slot(slot),
        slot=slot,
        real_nodes=recorded_real_nodes(root) or 0,
    )
