"""Where a local cluster keeps its state, and which loopback ports it listens on.

A cluster is a directory under the user's state root: PKI, etcd data, logs, pid
files and the admin kubeconfig. Keeping everything in one place makes `down` exact
(it stops only what that directory's pid files name) and `up` repeatable.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

DEFAULT_NAME = "trimtab"


@dataclasses.dataclass(frozen=True)
class Ports:
    """Loopback ports; chosen away from the usual defaults so a real cluster can coexist."""

    etcd_client: int = 23790
    etcd_peer: int = 23800
    apiserver: int = 26443
    controller_manager: int = 20257
    scheduler: int = 20259
    kwok: int = 20247


@dataclasses.dataclass(frozen=True)
class Layout:
    """Paths of one local cluster's state."""

    name: str
    root: pathlib.Path
    ports: Ports = dataclasses.field(default_factory=Ports)

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

    def component_kubeconfig(self, component: str) -> pathlib.Path:
        return self.root / f"{component}.kubeconfig"

    @property
    def server_url(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

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


def layout_for(name: str = DEFAULT_NAME) -> Layout:
    return Layout(name=name, root=state_root() / name)
