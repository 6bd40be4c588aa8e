"""Bringing a local cluster up and down, and reporting on it.

`up` is level-based: it starts whichever processes are not running, makes sure the
simulated nodes exist, and waits for the cluster to be usable, so running it twice
is harmless and running it after a crash repairs what is missing.
"""

from __future__ import annotations

import dataclasses
import pathlib
import subprocess
import time

import yaml

from trimtab.devcluster import binaries, components, health, kubeconfig, nodes, pki, processes
from trimtab.devcluster import layout as layout_mod
from trimtab.kube import client, objects
from trimtab.reconcile import conditions

_STARTUP_TIMEOUT = {"etcd": 30.0, "kube-apiserver": 60.0}
_DEFAULT_TIMEOUT = 30.0


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


def _components(lay: layout_mod.Layout) -> list[components.Component]:
    return components.all_components(lay, bin_dir=binaries.ensure_built())


def _write_kubeconfigs(lay: layout_mod.Layout) -> None:
    ca = lay.pki / "ca.crt"
    for stem, path in [("admin", lay.kubeconfig)] + [
        (c, lay.component_kubeconfig(c))
        for c in ("kube-controller-manager", "kube-scheduler", "kwok")
    ]:
        doc = kubeconfig.kubeconfig(
            server=lay.server_url,
            ca=ca,
            cert=lay.pki / f"{stem}.crt",
            key=lay.pki / f"{stem}.key",
            cluster_name=f"trimtab-{lay.name}",
        )
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


def _start_missing(lay: layout_mod.Layout, comps: list[components.Component]) -> list[str]:
    started = []
    for comp in comps:
        if processes.running_pid(lay.pids, comp) is None:
            processes.start(comp, pids=lay.pids, logs=lay.logs)
            started.append(comp.name)
        _wait_healthy(lay, comp)
    return started


def _wait_healthy(lay: layout_mod.Layout, comp: components.Component) -> None:
    """Wait for `comp` to answer its probe; fail at once, with its log, if it exits."""
    log = lay.logs / f"{comp.name}.log"

    def healthy() -> bool:
        if processes.running_pid(lay.pids, comp) is None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-5:])
            raise health.NotHealthyError(f"{comp.name} exited; last lines of {log}:\n{tail}")
        return health.probe(lay, comp.name)

    timeout = _STARTUP_TIMEOUT.get(comp.name, _DEFAULT_TIMEOUT)
    health.wait_until(healthy, what=f"{comp.name} (log: {log})", timeout=timeout)


def _ensure_nodes(store: objects.ObjectStore, *, spot: int, on_demand: int) -> None:
    for node in nodes.default_nodes(spot=spot, on_demand=on_demand):
        store.apply(node, field_manager="trimtab-cluster")


def _nodes_ready(store: objects.ObjectStore) -> bool:
    listed = store.list("v1", "Node")
    return bool(listed) and all(
        conditions.is_true(n.get("status", {}).get("conditions"), "Ready") for n in listed
    )


def _default_service_account(store: objects.ObjectStore) -> bool:
    return store.get("v1", "ServiceAccount", "default", "default") is not None


def up(lay: layout_mod.Layout, *, spot: int = 2, on_demand: int = 1) -> UpReport:
    """Start what is not running and wait until pods can be scheduled onto Ready nodes."""
    t0 = time.monotonic()
    comps = _components(lay)
    for d in (lay.root, lay.etcd_data):
        d.mkdir(parents=True, exist_ok=True)
    lay.etcd_data.chmod(0o700)
    pki.ensure_pki(lay.pki)
    _write_kubeconfigs(lay)
    started = _start_missing(lay, comps)
    store = objects.ObjectStore(client.connect(str(lay.kubeconfig)))
    _ensure_nodes(store, spot=spot, on_demand=on_demand)
    health.wait_until(lambda: _nodes_ready(store), what="simulated nodes", timeout=60)
    health.wait_until(
        lambda: _default_service_account(store), what="the default ServiceAccount", timeout=60
    )
    return UpReport(started=started, seconds=time.monotonic() - t0, kubeconfig=lay.kubeconfig)


def down(lay: layout_mod.Layout) -> list[str]:
    """Stop the processes this cluster's pid files name, in reverse start order."""
    comps = _components(lay)
    return [c.name for c in reversed(comps) if processes.stop(c, pids=lay.pids)]


def status(lay: layout_mod.Layout) -> list[ComponentStatus]:
    comps = _components(lay)
    report = []
    for comp in comps:
        pid = processes.running_pid(lay.pids, comp)
        healthy = pid is not None and health.probe(lay, comp.name)
        rss = processes.rss_bytes(pid) if pid is not None else 0
        report.append(ComponentStatus(comp.name, pid, healthy, rss))
    return report


def is_up(lay: layout_mod.Layout) -> bool:
    return all(s.healthy for s in status(lay))
