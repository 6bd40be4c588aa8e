"""Health probes of the local cluster's processes, over loopback HTTP(S)."""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from trimtab.devcluster import layout as layout_mod


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


def probe(lay: layout_mod.Layout, component: str) -> bool:
    """True when `component` answers its health endpoint."""
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
