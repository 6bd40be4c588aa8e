"""The command line of each control-plane process, as pure functions of the layout.

Order matters: `COMPONENTS` lists them in start order (etcd before the apiserver,
the apiserver before its clients, kwok last since it needs nodes to manage).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import pathlib

from trimtab_dev.devcluster import addresses
from trimtab_dev.devcluster import layout as layout_mod

SERVICE_CIDR = addresses.SERVICE_CIDR
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_NODE_ANNOTATION_VALUE = "fake"


@dataclasses.dataclass(frozen=True)
class Component:
    """One process of the local cluster: its name, argv, and the executable it runs as
    (the pid file's process must run it to count as ours)."""

    name: str
    argv: tuple[str, ...]
    binary: str
    env: tuple[tuple[str, str], ...] = ()  # set over the caller's environment


def etcd(lay: layout_mod.Layout, *, bin_dir: pathlib.Path) -> Component:
    etcd_bin = str(bin_dir / "etcd")
    peer = f"http://127.0.0.1:{lay.ports.etcd_peer}"
    argv = (
        etcd_bin,
        "--name=trimtab",
        f"--data-dir={lay.etcd_data}",
        f"--listen-client-urls={lay.etcd_url}",
        f"--advertise-client-urls={lay.etcd_url}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=trimtab={peer}",
        # A throwaway development store: fsync buys durability we do not need and
        # costs seconds per write burst on a shared disk.
        "--unsafe-no-fsync",
        "--quota-backend-bytes=4294967296",
        "--log-level=warn",
    )
    return Component(name="etcd", argv=argv, binary=etcd_bin)


def _kubelet_client_flags(lay: layout_mod.Layout) -> tuple[str, ...]:
    """With real nodes: reach kubelets with our own client certificate, verify theirs,
    and keep each kubelet to its own Node and pods (NodeRestriction)."""
    if not lay.real_nodes:
        return ()
    pki = lay.pki
    return (
        f"--kubelet-client-certificate={pki / 'kube-apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'kube-apiserver-kubelet-client.key'}",
        f"--kubelet-certificate-authority={pki / 'ca.crt'}",
        "--kubelet-preferred-address-types=InternalIP",
        "--enable-admission-plugins=NodeRestriction",
    )


def kube_apiserver(lay: layout_mod.Layout, *, bin_dir: pathlib.Path) -> Component:
    pki = lay.pki
    binary = str(bin_dir / "kube-apiserver")
    argv = (
        binary,
        f"--bind-address={lay.apiserver_address}",
        f"--advertise-address={lay.apiserver_address}",
        f"--secure-port={lay.ports.apiserver}",
        f"--etcd-servers={lay.etcd_url}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        "--enable-priority-and-fairness=false",
        "--profiling=false",
        "--v=0",
        *_kubelet_client_flags(lay),
    )
    return Component(name="kube-apiserver", argv=argv, binary=binary)


def kube_controller_manager(lay: layout_mod.Layout, *, bin_dir: pathlib.Path) -> Component:
    pki = lay.pki
    kubeconfig = lay.component_kubeconfig("kube-controller-manager")
    binary = str(bin_dir / "kube-controller-manager")
    argv = (
        binary,
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={lay.ports.controller_manager}",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        "--use-service-account-credentials=true",
        f"--cluster-cidr={lay.network.cluster_cidr}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allocate-node-cidrs=true",
        # Its flex-volume prober creates this directory; keep it in the state dir.
        f"--flex-volume-plugin-dir={lay.root / 'flexvolume'}",
        # One instance per cluster: leader election only delays a restart by a lease.
        "--leader-elect=false",
        "--profiling=false",
        "--v=0",
    )
    return Component(name="kube-controller-manager", argv=argv, binary=binary)


def kube_scheduler(lay: layout_mod.Layout, *, bin_dir: pathlib.Path) -> Component:
    kubeconfig = lay.component_kubeconfig("kube-scheduler")
    binary = str(bin_dir / "kube-scheduler")
    argv = (
        binary,
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={lay.ports.scheduler}",
        "--leader-elect=false",
        "--profiling=false",
        "--v=0",
    )
    return Component(name="kube-scheduler", argv=argv, binary=binary)


def kwok_stages_path() -> pathlib.Path:
    """The kwok stage configuration shipped with this package."""
    return pathlib.Path(
        str(importlib.resources.files("trimtab_dev.devcluster") / "kwok-stages.yaml")
    )


def kwok(lay: layout_mod.Layout, *, bin_dir: pathlib.Path) -> Component:
    binary = str(bin_dir / "kwok")
    argv = (
        binary,
        f"--config={kwok_stages_path()}",
        f"--kubeconfig={lay.component_kubeconfig('kwok')}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}={KWOK_NODE_ANNOTATION_VALUE}",
        "--node-lease-duration-seconds=40",
        f"--cidr={addresses.KWOK_CIDR}",
        "--node-ip=127.0.0.1",
        f"--server-address=127.0.0.1:{lay.ports.kwok}",
    )
    return Component(name="kwok", argv=argv, binary=binary)


def all_components(lay: layout_mod.Layout, *, bin_dir: pathlib.Path) -> list[Component]:
    """Every process of the cluster, in start order."""
    return [
        etcd(lay, bin_dir=bin_dir),
        kube_apiserver(lay, bin_dir=bin_dir),
        kube_controller_manager(lay, bin_dir=bin_dir),
        kube_scheduler(lay, bin_dir=bin_dir),
        kwok(lay, bin_dir=bin_dir),
    ]
