"""The configuration files of a real node, as pure functions of its paths and addresses.

containerd, the kubelet, the CNI network and kube-proxy each get one builder. Every
setting that differs from the upstream default is here for a measured reason on this
kind of machine (root without CAP_SYS_RESOURCE, cgroup v1, no registry, no systemd);
the comments say which. The node's processes run in the node's own network namespace,
so their loopback and iptables are the node's, never the host's.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

from trimtab_dev.devcluster import addresses, realnodes
from trimtab_dev.devcluster import layout as layout_mod

CGROUP_PARENT = "trimtab"
POD_BRIDGE = "cni0"  # inside the node's namespace, so every node may use the same name


@dataclasses.dataclass(frozen=True)
class NodeTls:
    """Files the kubelet serves and verifies with."""

    ca: pathlib.Path
    cert: pathlib.Path
    key: pathlib.Path


def cgroup_root(cluster: str, node: str) -> str:
    """The kubelet's cgroupRoot: one subtree per cluster and node in every hierarchy."""
    return f"/{CGROUP_PARENT}/{cluster}/{node}"


def cni_network_name(cluster: str, node: str) -> str:
    return f"trimtab-{cluster}-{node}"


def containerd_toml(paths: layout_mod.NodePaths, *, sandbox_image: str, runc: str) -> str:
    """containerd's config: all state under the node's directory, CRI on."""
    q = json.dumps  # TOML basic strings accept JSON's escapes
    cri = '[plugins."io.containerd.grpc.v1.cri"]'
    runtime = f"{cri[:-1]}.containerd.runtimes.runc]"
    return f"""version = 2
root = {q(str(paths.containerd_root))}
state = {q(str(paths.containerd_state))}
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = {q(str(paths.containerd_sock))}
[ttrpc]
  address = {q(str(paths.containerd_sock) + ".ttrpc")}
[plugins."io.containerd.internal.v1.opt"]
  path = {q(str(paths.containerd_opt))}
{cri}
  sandbox_image = {q(sandbox_image)}
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # Lowering a sandbox's oom_score_adj needs CAP_SYS_RESOURCE, which this host lacks.
  restrict_oom_score_adj = true
  # Pod network namespaces under the state dir, not /run/netns: `down` unmounts them.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    {runtime}
      runtime_type = "io.containerd.runc.v2"
      {runtime[:-1]}.options]
        BinaryName = {q(runc)}
        Root = {q(str(paths.runc_root))}
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = {q(str(paths.cni_conf_dir))}
    max_conf_num = 1
"""


def _kubelet_security(tls: NodeTls) -> dict[str, Any]:
    # The apiserver reaches the kubelet with its own client certificate (x509 against
    # the cluster CA); bearer tokens go through TokenReview; each request is authorized
    # by a SubjectAccessReview. Nothing anonymous.
    return {
        "tlsCertFile": str(tls.cert),
        "tlsPrivateKeyFile": str(tls.key),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(tls.ca)},
        },
        "authorization": {"mode": "Webhook"},
    }


def kubelet_config(
    paths: layout_mod.NodePaths,
    node: realnodes.RealNode,
    *,
    address: str,
    cluster: str,
    tls: NodeTls,
) -> dict[str, Any]:
    """The KubeletConfiguration of `node`, serving on `address` in its namespace."""
    return {
        **_kubelet_security(tls),
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "containerRuntimeEndpoint": f"unix://{paths.containerd_sock}",
        "imageServiceEndpoint": f"unix://{paths.containerd_sock}",
        "cgroupDriver": "cgroupfs",  # no systemd here
        "cgroupRoot": cgroup_root(cluster, node.name),  # pre-created: the kubelet insists
        "failCgroupV1": False,  # this host is a v1/v2 hybrid
        "failSwapOn": False,
        "address": address,  # the apiserver connects here for logs and exec
        "port": addresses.KUBELET_PORT,
        "healthzBindAddress": address,
        "healthzPort": addresses.KUBELET_HEALTHZ_PORT,
        "readOnlyPort": 0,
        "podLogsDir": str(paths.pod_logs),
        "volumePluginDir": str(paths.volume_plugins),
        "registerWithTaints": node.taints,
        "clusterDomain": "cluster.local",
        # Images are imported, never pulled: garbage-collecting one loses it for good.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
        },
        # The node's own namespace holds kube-proxy's rules; the kubelet needs no chains.
        "makeIPTablesUtilChains": False,
        "serializeImagePulls": False,
    }


def cni_conflist(name: str, *, pod_cidr: str, ipam_dir: pathlib.Path) -> dict[str, Any]:
    """A bridge network on the node's podCIDR. The gateway address is set on the bridge
    by us (isGateway false), so the plugin never touches ip_forward; masquerading is
    unneeded because the host routes the pod ranges back to their nodes."""
    return {
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": POD_BRIDGE,
                "isGateway": False,
                "ipMasq": False,
                "hairpinMode": True,  # a pod reaching itself through its Service
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": pod_cidr, "gateway": gateway(pod_cidr)}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam_dir),
                },
            },
            {"type": "loopback"},
        ],
    }


def gateway(pod_cidr: str) -> str:
    """The first address of a /24 pod range: the pods' default gateway."""
    network, _ = pod_cidr.split("/")
    return network.rsplit(".", 1)[0] + ".1"


def kube_proxy_config(
    *, kubeconfig: pathlib.Path, node: str, address: str, cluster_cidr: str
) -> dict[str, Any]:
    """kube-proxy in iptables mode, in the node's namespace."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node,
        "bindAddress": address,
        "healthzBindAddress": f"{address}:{addresses.KUBE_PROXY_HEALTHZ_PORT}",
        "metricsBindAddress": "127.0.0.1:10249",
        "mode": "iptables",
        "clusterCIDR": cluster_cidr,
        "detectLocalMode": "ClusterCIDR",
        # nf_conntrack_max is read-only outside the host's namespace: leave it alone.
        "conntrack": {"maxPerCore": 0, "min": 0},
        "oomScoreAdj": 0,  # lowering it needs CAP_SYS_RESOURCE
        "iptables": {"localhostNodePorts": False},
        "nodePortAddresses": ["primary"],  # the node's own address only
    }
