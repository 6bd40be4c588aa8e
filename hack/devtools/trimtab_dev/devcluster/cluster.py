"""Bringing a local cluster up and down, and reporting on it.

`up` is level-based: it starts whichever processes are not running, makes sure the
simulated nodes exist, and waits for the cluster to be usable, so running it twice
is harmless and running it after a crash repairs what is missing. With real nodes
(`realnode`) it also makes the host changes they need, recorded in the state dir, and
`down` undoes exactly those.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import subprocess
import time

import yaml

from trimtab.kube import client, objects
from trimtab.reconcile import conditions
from trimtab_dev.devcluster import (
    binaries,
    components,
    health,
    host,
    kubeconfig,
    nodes,
    pki,
    processes,
    realnode,
    realnodes,
)
from trimtab_dev.devcluster import layout as layout_mod

DEFAULT_REAL_NODES = 1  # for a new cluster; an existing one keeps what it recorded
_KUBELET_API_BINDING = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": "trimtab:kube-apiserver-kubelet-client"},
    "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "system:kubelet-api-admin",
    },
    "subjects": [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": pki.KUBELET_CLIENT.user}
    ],
}


@dataclasses.dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    healthy: bool
    rss_bytes: int


@dataclasses.dataclass(frozen=True)
class UpReport:
    started: list[str]
    seconds: float
    kubeconfig: pathlib.Path
    host_address: str | None = None


@dataclasses.dataclass(frozen=True)
class DownReport:
    stopped: list[str]
    problems: list[str]  # host changes that could not be undone (still recorded)


def _control_plane(lay: layout_mod.Layout, bin_dir: pathlib.Path) -> list[components.Component]:
    return components.all_components(lay, bin_dir=bin_dir)


def _components(lay: layout_mod.Layout) -> list[components.Component]:
    bin_dir = binaries.ensure_built()
    comps = _control_plane(lay, bin_dir)
    if lay.real_nodes:
        comps += realnode.components_of(lay, bin_dir, host.tools())
    return comps


def _write_kubeconfigs(lay: layout_mod.Layout) -> None:
    ca = lay.pki / "ca.crt"
    control = [
        (c, lay.component_kubeconfig(c))
        for c in ("kube-controller-manager", "kube-scheduler", "kwok")
    ]
    for stem, path in [("admin", lay.kubeconfig), *control, *realnode.kubeconfigs(lay)]:
        doc = kubeconfig.kubeconfig(
            server=lay.server_url,
            ca=ca,
            cert=lay.pki / f"{stem}.crt",
            key=lay.pki / f"{stem}.key",
            cluster_name=f"trimtab-{lay.name}",
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        path.chmod(0o600)


def kubectl(
    lay: layout_mod.Layout, bin_dir: pathlib.Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the pinned kubectl against this cluster as the admin user."""
    return subprocess.run(
        [str(bin_dir / "kubectl"), f"--kubeconfig={lay.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def _ensure_nodes(store: objects.ObjectStore, *, spot: int, on_demand: int) -> None:
    for node in nodes.default_nodes(spot=spot, on_demand=on_demand):
        store.apply(node, field_manager="trimtab-cluster")


def _drop_surplus_real_nodes(store: objects.ObjectStore, lay: layout_mod.Layout) -> None:
    """Node objects of real nodes this `up` no longer runs (a smaller --real-nodes)."""
    wanted = {n.name for n in realnode.nodes_of(lay)}
    for node in store.list("v1", "Node"):
        labels = node["metadata"].get("labels") or {}
        if labels.get(realnodes.REAL_NODE_LABEL) and node["metadata"]["name"] not in wanted:
            store.delete("v1", "Node", node["metadata"]["name"])


def _nodes_ready(store: objects.ObjectStore) -> bool:
    listed = store.list("v1", "Node")
    return bool(listed) and all(
        conditions.is_true(n.get("status", {}).get("conditions"), "Ready") for n in listed
    )


def _default_service_account(store: objects.ObjectStore) -> bool:
    return store.get("v1", "ServiceAccount", "default", "default") is not None


def _wanted_real_nodes(lay: layout_mod.Layout, requested: int | None) -> int:
    """The count asked for; else what the cluster recorded; else the default for a new
    cluster (0 for one started before real nodes existed, which records nothing)."""
    if requested is not None:
        return requested
    recorded = layout_mod.recorded_real_nodes(lay.root)
    if recorded is not None:
        return recorded
    return 0 if any(s.pid for s in status(lay)) else DEFAULT_REAL_NODES


def _with_spec(lay: layout_mod.Layout, real_nodes: int) -> layout_mod.Layout:
    """`lay` running `real_nodes` real nodes; refused while it runs with another count,
    since the apiserver's address and the nodes' processes depend on it."""
    if not 0 <= real_nodes <= lay.network.max_nodes:
        raise ValueError(f"--real-nodes must be 0..{lay.network.max_nodes}, not {real_nodes}")
    if real_nodes != lay.real_nodes and any(s.pid for s in status(lay)):
        raise RuntimeError(
            f"cluster {lay.name} runs with --real-nodes {lay.real_nodes}; "
            f"run `trimtab cluster --name {lay.name} down` before changing it"
        )
    lay = dataclasses.replace(lay, real_nodes=real_nodes)
    lay.root.mkdir(parents=True, exist_ok=True)
    lay.spec_file.write_text(json.dumps({"real_nodes": real_nodes}) + "\n")
    return lay


def _prepare_state(lay: layout_mod.Layout) -> None:
    lay.etcd_data.mkdir(parents=True, exist_ok=True)
    lay.etcd_data.chmod(0o700)
    clients, servers = realnode.identities(lay)
    pki.ensure_pki(
        lay.pki,
        host_address=lay.network.host_address,
        clients=(*pki.CLIENTS, *clients),
        servers=servers,
    )
    _write_kubeconfigs(lay)


def _start_control_plane(
    lay: layout_mod.Layout, bin_dir: pathlib.Path
) -> tuple[list[str], objects.ObjectStore]:
    _prepare_state(lay)
    if lay.real_nodes:
        realnode.prepare_host(lay)  # the apiserver binds the bridge's address
    started = health.start_missing(lay, _control_plane(lay, bin_dir))
    return started, objects.ObjectStore(client.connect(str(lay.kubeconfig)))


def _start_real_nodes(
    lay: layout_mod.Layout,
    store: objects.ObjectStore,
    bin_dir: pathlib.Path,
    images: tuple[pathlib.Path, ...],
) -> list[str]:
    _drop_surplus_real_nodes(store, lay)
    if not lay.real_nodes:
        return []
    store.apply(_KUBELET_API_BINDING, field_manager="trimtab-cluster")
    started = realnode.bring_up(lay, store, bin_dir)
    realnode.load_images(lay, list(images))
    return started


def _wait_usable(store: objects.ObjectStore) -> None:
    health.wait_until(lambda: _nodes_ready(store), what="the nodes", timeout=90)
    health.wait_until(
        lambda: _default_service_account(store), what="the default ServiceAccount", timeout=60
    )


def up(
    lay: layout_mod.Layout,
    *,
    spot: int = 2,
    on_demand: int = 1,
    real_nodes: int | None = None,
    images: tuple[pathlib.Path, ...] = (),
) -> UpReport:
    """Start what is not running and wait until pods can be scheduled onto Ready nodes.

    `real_nodes` None keeps the count the cluster recorded (DEFAULT_REAL_NODES if new)."""
    t0 = time.monotonic()
    count = _wanted_real_nodes(lay, real_nodes)
    if count:
        host.tools()  # fail before anything changes when this host cannot run them
    lay = _with_spec(lay, count)
    bin_dir = binaries.ensure_built()
    started, store = _start_control_plane(lay, bin_dir)
    _ensure_nodes(store, spot=spot, on_demand=on_demand)
    started += _start_real_nodes(lay, store, bin_dir, images)
    _wait_usable(store)
    return UpReport(started, time.monotonic() - t0, lay.kubeconfig, lay.host_address)


def down(lay: layout_mod.Layout) -> DownReport:
    """Stop the real nodes and undo their host changes, then stop the control plane's
    processes that this cluster's pid files name, in reverse start order."""
    bin_dir = binaries.ensure_built()
    stopped = realnode.stop_nodes(lay, bin_dir)
    comps = _control_plane(lay, bin_dir)
    stopped += [c.name for c in reversed(comps) if processes.stop(c, pids=lay.pids)]
    return DownReport(stopped, realnode.undo_host(lay))


def status(lay: layout_mod.Layout) -> list[ComponentStatus]:
    report = []
    for comp in _components(lay):
        pid = processes.running_pid(lay.pids, comp)
        healthy = pid is not None and health.probe(lay, comp.name)
        rss = processes.rss_bytes(pid) if pid is not None else 0
        report.append(ComponentStatus(comp.name, pid, healthy, rss))
    return report


def is_up(lay: layout_mod.Layout) -> bool:
    return all(s.healthy for s in status(lay))
