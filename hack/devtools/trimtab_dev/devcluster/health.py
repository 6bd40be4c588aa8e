"""Health probes of the local cluster's processes, and waiting for them.

The control plane answers over loopback HTTP(S); a real node's kubelet and kube-proxy
answer on the node's own address (they live in its network namespace), and its
containerd on its unix socket.
"""

from __future__ import annotations

import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from trimtab_dev.devcluster import addresses, components, processes, realnodes
from trimtab_dev.devcluster import layout as layout_mod

_STARTUP_TIMEOUT = {"etcd": 30.0, "kube-apiserver": 60.0}
_DEFAULT_TIMEOUT = 30.0


class NotHealthyError(RuntimeError):
    """A component did not become healthy in time."""


def _insecure_context() -> ssl.SSLContext:
    # Controller-manager and scheduler serve /healthz with self-signed certificates
    # made at start; these probes only ever go to 127.0.0.1.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _admin_context(lay: layout_mod.Layout) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(lay.pki / "ca.crt"))
    ctx.load_cert_chain(str(lay.pki / "admin.crt"), str(lay.pki / "admin.key"))
    return ctx


def _get_ok(url: str, ctx: ssl.SSLContext | None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def _socket_listens(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


def _node_probe(lay: layout_mod.Layout, component: str) -> bool:
    kind, name = component.split(".", 1)
    node = next(n for n in realnodes.real_nodes(lay.real_nodes) if n.name == name)
    address = node.address(lay.network)
    if kind == "containerd":
        return _socket_listens(str(lay.node(name).containerd_sock))
    port = (
        addresses.KUBELET_HEALTHZ_PORT if kind == "kubelet" else addresses.KUBE_PROXY_HEALTHZ_PORT
    )
    return _get_ok(f"http://{address}:{port}/healthz", None)


def probe(lay: layout_mod.Layout, component: str) -> bool:
    """True when `component` answers its health endpoint."""
    if "." in component:
        return _node_probe(lay, component)
    ports = lay.ports
    checks: dict[str, Callable[[], bool]] = {
        "etcd": lambda: _get_ok(f"{lay.etcd_url}/health", None),
        "kube-apiserver": lambda: _get_ok(f"{lay.server_url}/readyz", _admin_context(lay)),
        "kube-controller-manager": lambda: _get_ok(
            f"https://127.0.0.1:{ports.controller_manager}/healthz", _insecure_context()
        ),
        "kube-scheduler": lambda: _get_ok(
            f"https://127.0.0.1:{ports.scheduler}/healthz", _insecure_context()
        ),
        "kwok": lambda: _get_ok(f"http://127.0.0.1:{ports.kwok}/healthz", None),
    }
    return checks[component]()


def wait_until(check: Callable[[], bool], *, what: str, timeout: float) -> None:
    """Poll `check` every 100 ms until it holds, or raise NotHealthyError naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise NotHealthyError(f"{what} not ready after {timeout:.0f} s")


def wait_started(lay: layout_mod.Layout, comp: components.Component) -> None:
    """Wait for `comp` to answer its probe; fail at once, with its log, if it exits."""
    log = lay.logs / f"{comp.name}.log"

    def healthy() -> bool:
        if processes.running_pid(lay.pids, comp) is None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-5:])
            raise NotHealthyError(f"{comp.name} exited; last lines of {log}:\n{tail}")
        return probe(lay, comp.name)

    timeout = _STARTUP_TIMEOUT.get(comp.name, _DEFAULT_TIMEOUT)
    wait_until(healthy, what=f"{comp.name} (log: {log})", timeout=timeout)


def start_missing(lay: layout_mod.Layout, comps: list[components.Component]) -> list[str]:
    """Start each of `comps` that is not running, in order, each healthy before the next."""
    started = []
    for comp in comps:
        if processes.running_pid(lay.pids, comp) is None:
            processes.start(comp, pids=lay.pids, logs=lay.logs)
            started.append(comp.name)
        wait_started(lay, comp)
    return started
