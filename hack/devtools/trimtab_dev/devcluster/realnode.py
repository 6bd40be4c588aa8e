"""Bringing a cluster's real nodes up and down: containerd, kubelet and kube-proxy each.

Each node is a network namespace on the cluster's bridge (its own address, loopback,
routes and iptables, so kube-proxy's rules never reach the host's), with its own
containerd, kubelet and kube-proxy. `bring_up` is level-based like the rest of `up`:

1. host side: namespace, veth, cgroups, config files (recorded, see `host`);
2. containerd, then the pause image (built locally, imported once);
3. the pod network of every node whose podCIDR is known (a warm restart);
4. the kubelets, which register their Nodes; the controller-manager gives each a
   podCIDR, which becomes the node's CNI network and the host's route back to it;
5. kube-proxy, once its Node exists.

`stop_nodes` stops them in reverse, removing every container while containerd still
runs; `undo_host` then undoes the host record.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import shutil
import subprocess
from typing import Any

import yaml

from trimtab.kube import objects
from trimtab_dev.devcluster import (
    components,
    health,
    host,
    hostundo,
    images,
    nodecomponents,
    nodeconfig,
    pki,
    processes,
    realnodes,
    runtime,
)
from trimtab_dev.devcluster import hostrecord as rec
from trimtab_dev.devcluster import layout as layout_mod


def nodes_of(lay: layout_mod.Layout) -> list[realnodes.RealNode]:
    return realnodes.real_nodes(lay.real_nodes)


def identities(
    lay: layout_mod.Layout,
) -> tuple[tuple[pki.ClientIdentity, ...], tuple[pki.ServingIdentity, ...]]:
    """Client and serving certificates the real nodes need."""
    nodes = nodes_of(lay)
    if not nodes:
        return (), ()
    clients = (pki.KUBELET_CLIENT, pki.KUBE_PROXY, *(pki.node_client(n.name) for n in nodes))
    servers = tuple(pki.node_serving(n.name, n.address(lay.network)) for n in nodes)
    return clients, servers


def kubeconfigs(lay: layout_mod.Layout) -> list[tuple[str, pathlib.Path]]:
    """(certificate stem, kubeconfig path) of every real-node identity."""
    nodes = nodes_of(lay)
    own = [(f"node-{n.name}", lay.node(n.name).kubeconfig) for n in nodes]
    return [*own, ("kube-proxy", lay.component_kubeconfig("kube-proxy"))] if nodes else []


def components_of(
    lay: layout_mod.Layout, bin_dir: pathlib.Path, tools: nodecomponents.HostTools
) -> list[components.Component]:
    return [
        c
        for n in nodes_of(lay)
        for c in nodecomponents.for_node(lay, n, bin_dir=bin_dir, tools=tools)
    ]


def prepare_host(lay: layout_mod.Layout) -> None:
    """The bridge whose address the apiserver binds: needed before the control plane."""
    host.ensure_bridge(lay.host_changes, host.tools(), lay.network, owner=str(lay.root))


def _dump(path: pathlib.Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:  # unchanged files reload nothing
        path.write_text(text)


def _write_configs(
    lay: layout_mod.Layout, node: realnodes.RealNode, t: nodecomponents.HostTools, pause: str
) -> None:
    paths, address = lay.node(node.name), node.address(lay.network)
    for d in (paths.containerd_root, paths.pod_logs, paths.volume_plugins, paths.cni_conf_dir):
        d.mkdir(parents=True, exist_ok=True)
    _dump(
        paths.containerd_config, nodeconfig.containerd_toml(paths, sandbox_image=pause, runc=t.runc)
    )
    stem = lay.pki / f"node-{node.name}-serving"
    tls = nodeconfig.NodeTls(lay.pki / "ca.crt", stem.with_suffix(".crt"), stem.with_suffix(".key"))
    kubelet = nodeconfig.kubelet_config(paths, node, address=address, cluster=lay.name, tls=tls)
    _dump(paths.kubelet_config, yaml.safe_dump(kubelet, sort_keys=False))
    proxy = nodeconfig.kube_proxy_config(
        kubeconfig=lay.component_kubeconfig("kube-proxy"),
        node=node.name,
        address=address,
        cluster_cidr=lay.network.cluster_cidr,
    )
    _dump(paths.kube_proxy_config, yaml.safe_dump(proxy, sort_keys=False))


def _prepare_node(
    lay: layout_mod.Layout, node: realnodes.RealNode, t: nodecomponents.HostTools, pause: str
) -> None:
    record, paths = lay.host_changes, lay.node(node.name)
    host.ensure_netns(record, paths.netns)
    host.ensure_node_link(record, t, lay.network, index=node.index, netns=paths.netns)
    host.ensure_cgroup(record, lay.name, node.name)
    rec.add(record, rec.Change(rec.Kind.SHIMS, str(paths.containerd_sock)))
    _write_configs(lay, node, t, pause)


def pause_reference(bin_dir: pathlib.Path) -> str:
    out = subprocess.run([str(bin_dir / "pause"), "-v"], capture_output=True, text=True, check=True)
    return images.pause_reference(out.stdout.strip())


def _ensure_pause(
    lay: layout_mod.Layout, node: str, t: nodecomponents.HostTools, bin_dir: pathlib.Path
) -> None:
    ref, sock = pause_reference(bin_dir), lay.node(node).containerd_sock
    if ref in runtime.images(t.ctr, sock):
        return
    archive = lay.root / "images" / "pause.tar"
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(images.pause_archive(ref, (bin_dir / "pause").read_bytes()))
    runtime.import_archive(t.ctr, sock, archive)


def _pod_cidr(store: objects.ObjectStore, node: str) -> str | None:
    obj: dict[str, Any] = store.get("v1", "Node", node) or {}
    return (obj.get("spec") or {}).get("podCIDR")


def _wire_pod_network(
    lay: layout_mod.Layout, node: realnodes.RealNode, t: nodecomponents.HostTools, cidr: str
) -> None:
    paths = lay.node(node.name)
    host.ensure_pod_network(
        lay.host_changes,
        t,
        lay.network,
        netns=paths.netns,
        pod_cidr=cidr,
        node_address=node.address(lay.network),
        gateway=nodeconfig.gateway(cidr),
    )
    name = nodeconfig.cni_network_name(lay.name, node.name)
    conflist = nodeconfig.cni_conflist(name, pod_cidr=cidr, ipam_dir=paths.cni_ipam)
    _dump(paths.cni_conflist, json.dumps(conflist, indent=2) + "\n")


def _wire_known(
    lay: layout_mod.Layout, store: objects.ObjectStore, t: nodecomponents.HostTools
) -> dict[str, str]:
    """Wire every node whose podCIDR is already allocated; returns node -> podCIDR."""
    cidrs = {}
    for node in nodes_of(lay):
        cidr = _pod_cidr(store, node.name)
        if cidr:
            _wire_pod_network(lay, node, t, cidr)
            cidrs[node.name] = cidr
    return cidrs


def _route_peers(
    lay: layout_mod.Layout, t: nodecomponents.HostTools, cidrs: dict[str, str]
) -> None:
    """Pods reach another node's pods directly over the bridge (the host forwards nothing)."""
    nodes = nodes_of(lay)
    for node, peer in ((n, p) for n in nodes for p in nodes if p.name != n.name):
        route = ("route", "replace", cidrs[peer.name], "via", peer.address(lay.network))
        host.in_netns(t, lay.node(node.name).netns, t.ip, *route)


def _by_kind(comps: list[components.Component], kind: str) -> list[components.Component]:
    return [c for c in comps if c.name.startswith(f"{kind}.")]


def _prepare(lay: layout_mod.Layout, t: nodecomponents.HostTools, bin_dir: pathlib.Path) -> None:
    host.record_hardcoded_dirs(lay.host_changes)
    rec.add(lay.host_changes, rec.Change(rec.Kind.MOUNTS, str(lay.root)))
    pause = pause_reference(bin_dir)
    for node in nodes_of(lay):
        _prepare_node(lay, node, t, pause)


def _wait_pod_cidrs(lay: layout_mod.Layout, store: objects.ObjectStore) -> None:
    health.wait_until(
        lambda: all(_pod_cidr(store, n.name) for n in nodes_of(lay)),
        what="the real nodes' registration and podCIDRs",
        timeout=60,
    )


def bring_up(
    lay: layout_mod.Layout, store: objects.ObjectStore, bin_dir: pathlib.Path
) -> list[str]:
    """Start what is missing of every real node; returns the processes started."""
    t = host.tools()
    _prepare(lay, t, bin_dir)
    comps = components_of(lay, bin_dir, t)
    started = health.start_missing(lay, _by_kind(comps, "containerd"))
    for node in nodes_of(lay):
        _ensure_pause(lay, node.name, t, bin_dir)
    _wire_known(lay, store, t)  # a warm restart: the pods' bridge before the kubelet
    started += health.start_missing(lay, _by_kind(comps, "kubelet"))
    _wait_pod_cidrs(lay, store)
    _route_peers(lay, t, _wire_known(lay, store, t))
    return started + health.start_missing(lay, _by_kind(comps, "kube-proxy"))


def load_images(lay: layout_mod.Layout, archives: list[pathlib.Path]) -> list[str]:
    """Import each archive into every real node's containerd; returns the references."""
    t, refs = host.tools(), set()
    for node in nodes_of(lay):
        for archive in archives:
            refs.update(runtime.import_archive(t.ctr, lay.node(node.name).containerd_sock, archive))
    return sorted(refs)


def _stop_node(
    lay: layout_mod.Layout, node_comps: list[components.Component], t: nodecomponents.HostTools
) -> list[str]:
    containerd, kubelet, proxy = node_comps
    stopped = [c.name for c in (proxy, kubelet) if processes.stop(c, pids=lay.pids)]
    if processes.running_pid(lay.pids, containerd) is not None:
        sock = lay.node(containerd.name.split(".", 1)[1]).containerd_sock
        # If ctr fails, the record's shim and cgroup entries finish the job.
        with contextlib.suppress(runtime.CtrError, subprocess.TimeoutExpired):
            runtime.remove_all_containers(t.ctr, sock)
        stopped += [containerd.name] if processes.stop(containerd, pids=lay.pids) else []
    return stopped


def stop_nodes(lay: layout_mod.Layout, bin_dir: pathlib.Path) -> list[str]:
    """Stop every real node's processes, its containers removed first."""
    stopped: list[str] = []
    if lay.real_nodes:
        t = host.tools()
        for node in reversed(nodes_of(lay)):
            comps = nodecomponents.for_node(lay, node, bin_dir=bin_dir, tools=t)
            stopped += _stop_node(lay, comps, t)
    return stopped


def undo_host(lay: layout_mod.Layout) -> list[str]:
    """Undo the host record once nothing runs; returns the problems left recorded."""
    if not lay.host_changes.exists():
        return []
    hostundo.remove_left_files(lay.root, nodeconfig.cni_network_name(lay.name, ""))
    problems = hostundo.undo(lay.host_changes)
    for node in nodes_of(lay):
        shutil.rmtree(lay.node(node.name).cni_ipam, ignore_errors=True)  # no pod holds an IP
    return problems
