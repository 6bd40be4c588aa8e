"""A cluster of its own with real nodes, a busybox image for them, and the host's state
that `down` must leave as it found it; and, for tests on any cluster's real nodes, the
project's image imported into them and a Redis their pods reach.

The real-node tests bring up their own named cluster (its own slot: ports, bridge,
addresses) so they can take it down and inspect the host while the session's cluster
keeps running.
"""

from __future__ import annotations

import contextlib
import pathlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from tests.harness import chart, redis_server
from trimtab_dev.devcluster import host, images, layout, realnodes

NAME = "rn-it"
BUSYBOX = "localhost/trimtab/busybox:test"


def trimtab(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trimtab", "cluster", "--name", name, *args],
        capture_output=True,
        text=True,
        check=False,
    )


@contextlib.contextmanager
def real_cluster(name: str = NAME, *, nodes: int = 2) -> Iterator[layout.Layout]:
    """`trimtab cluster up --real-nodes N` on fresh state; down and purged afterwards."""
    trimtab(name, "down", "--purge")
    result = trimtab(name, "up", "--real-nodes", str(nodes))
    try:
        if result.returncode != 0:
            raise RuntimeError(f"cluster up failed:\n{result.stdout}\n{result.stderr}")
        yield layout.layout_for(name)
    finally:
        trimtab(name, "down", "--purge")


def busybox_archive(path: pathlib.Path) -> pathlib.Path:
    """A one-layer image of Debian's static busybox with every applet linked in /bin."""
    binary = pathlib.Path("/bin/busybox")
    if not binary.exists():
        raise RuntimeError("/bin/busybox not found: hack/install-deps.sh installs busybox-static")
    applets = subprocess.run([str(binary), "--list"], capture_output=True, text=True, check=True)
    files = [images.File("/bin/busybox", binary.read_bytes())]
    files += [
        images.File(f"/bin/{a}", link="busybox") for a in applets.stdout.split() if a != "busybox"
    ]
    path.write_bytes(images.docker_archive(BUSYBOX, files, images.ImageConfig(("/bin/sh",))))
    return path


def project_image(lay: layout.Layout) -> str:
    """The project's image, built from the Dockerfile by hack/build-image.sh (cached by its
    inputs: a few minutes when operator/ changed, else nothing) and imported into every
    real node of `lay`; returns its reference, the operator's default worker image."""
    archive = chart.hack_output("build-image.sh").splitlines()[-1]
    loaded = trimtab(lay.name, "load-image", archive)
    if loaded.returncode != 0:
        raise RuntimeError(f"load-image {archive} failed:\n{loaded.stdout}\n{loaded.stderr}")
    return loaded.stdout.split()[-1]  # "loaded REFERENCE"


@contextlib.contextmanager
def host_redis(workdir: pathlib.Path, lay: layout.Layout) -> Iterator[str]:
    """A redis-server on loopback and on the host's address on the node bridge, where
    pods reach it; yields its URL at the host's address (the host reaches it there too)."""
    address = lay.host_address
    if address is None:
        raise RuntimeError(f"cluster {lay.name} runs no real node: pods cannot reach the host")
    args = ("--bind", "127.0.0.1", address, "--protected-mode", "no")
    with redis_server.running_redis(workdir, args=args) as url:
        yield url.replace("//127.0.0.1:", f"//{address}:", 1)


def pod(
    name: str, node: realnodes.RealNode, script: str, *, once: bool = False, **labels: str
) -> dict[str, Any]:
    """A busybox pod that runs `script` on `node` and only there (`once`: to completion)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {
            **realnodes.placement(node),
            "restartPolicy": "Never" if once else "Always",
            "containers": [
                {
                    "name": "main",
                    "image": BUSYBOX,
                    "imagePullPolicy": "Never",
                    "command": ["/bin/sh", "-c", script],
                }
            ],
        },
    }


def host_traces(lay: layout.Layout) -> dict[str, list[str]]:
    """Everything of this cluster's that a host change would leave behind; all empty
    once `down` has undone them."""
    net, root = lay.network, str(lay.root)
    links = [p.name for p in pathlib.Path("/sys/class/net").iterdir()]
    cgroups = [str(h / host.CGROUP_PARENT / lay.name) for h in host.cgroup_hierarchies()]
    iptables = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False)
    return {
        "links": [n for n in links if n == net.bridge or n.startswith(f"{net.bridge}n")],
        "mounts": [str(p) for p in host.mounts_under(lay.root)],
        "cgroups": [c for c in cgroups if pathlib.Path(c).exists()],
        "routes": [r for r in _routes() if net.bridge in r],
        "iptables": [line for line in iptables.stdout.splitlines() if "KUBE-" in line],
        "processes": [p for p in _process_argvs() if root in p],
        "record": [str(lay.host_changes)] if lay.host_changes.exists() else [],
        "left files": _left_files(lay),
    }


def _routes() -> list[str]:
    return host.run("ip", "route", "show").stdout.splitlines()


def _process_argvs() -> list[str]:
    found = []
    for proc in pathlib.Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit():
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
    return found


def _left_files(lay: layout.Layout) -> list[str]:
    left = []
    for d in host.HARDCODED_DIRS:
        path = pathlib.Path(d)
        for entry in path.iterdir() if path.is_dir() else []:
            if lay.name in entry.name or (
                entry.is_symlink() and str(lay.root) in str(entry.readlink())
            ):
                left.append(str(entry))
    return left
