"""The command lines of a real node's processes (containerd, kubelet, kube-proxy), pure.

Each runs inside the node's network namespace through `nsenter --net`, which changes
only the network namespace: the mounts the kubelet makes for pod volumes stay visible
to containerd (`ip netns exec` would give each process a mount namespace of its own).
nsenter execs the program, so the pid file names the program itself.
"""

from __future__ import annotations

import dataclasses
import pathlib

from trimtab_dev.devcluster import components, realnodes
from trimtab_dev.devcluster import layout as layout_mod


@dataclasses.dataclass(frozen=True)
class HostTools:
    """Executables of the host's packages that a real node needs (hack/install-deps.sh)."""

    nsenter: str
    containerd: str
    runc: str
    ctr: str
    ip: str


# The node's processes exec mount, iptables and the CNI plugins' helpers by name.
_ENV = (("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),)


def _in_netns(paths: layout_mod.NodePaths, tools: HostTools, *argv: str) -> tuple[str, ...]:
    return (tools.nsenter, f"--net={paths.netns}", "--", *argv)


def containerd(
    lay: layout_mod.Layout, node: realnodes.RealNode, *, tools: HostTools
) -> components.Component:
    paths = lay.node(node.name)
    argv = _in_netns(paths, tools, tools.containerd, f"--config={paths.containerd_config}")
    return components.Component(f"containerd.{node.name}", argv, tools.containerd, _ENV)


def kubelet(
    lay: layout_mod.Layout, node: realnodes.RealNode, *, bin_dir: pathlib.Path, tools: HostTools
) -> components.Component:
    paths, binary = lay.node(node.name), str(bin_dir / "kubelet")
    labels = ",".join(f"{k}={v}" for k, v in sorted(node.labels.items()))
    argv = _in_netns(
        paths,
        tools,
        binary,
        f"--config={paths.kubelet_config}",
        f"--kubeconfig={paths.kubeconfig}",
        f"--root-dir={paths.kubelet_root}",
        f"--cert-dir={paths.kubelet_certs}",
        f"--hostname-override={node.name}",
        f"--node-ip={node.address(lay.network)}",
        f"--node-labels={labels}",
        "--v=0",
    )
    return components.Component(f"kubelet.{node.name}", argv, binary, _ENV)


def kube_proxy(
    lay: layout_mod.Layout, node: realnodes.RealNode, *, bin_dir: pathlib.Path, tools: HostTools
) -> components.Component:
    paths, binary = lay.node(node.name), str(bin_dir / "kube-proxy")
    argv = _in_netns(paths, tools, binary, f"--config={paths.kube_proxy_config}", "--v=0")
    return components.Component(f"kube-proxy.{node.name}", argv, binary, _ENV)


def for_node(
    lay: layout_mod.Layout, node: realnodes.RealNode, *, bin_dir: pathlib.Path, tools: HostTools
) -> list[components.Component]:
    """The node's processes in start order: the runtime before the kubelet that uses it."""
    return [
        containerd(lay, node, tools=tools),
        kubelet(lay, node, bin_dir=bin_dir, tools=tools),
        kube_proxy(lay, node, bin_dir=bin_dir, tools=tools),
    ]
