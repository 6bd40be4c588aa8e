"""Talking to a real node's containerd through `ctr`, in the CRI's `k8s.io` namespace.

Images are imported here (nothing is ever pulled), and before containerd stops every
container is removed, so no shim, rootfs mount or pod network namespace outlives it.
crictl is not packaged in Debian; ctr is, and speaks to the same store.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import tarfile

NAMESPACE = "k8s.io"


class CtrError(RuntimeError):
    """A ctr call failed."""


def _ctr(ctr: str, sock: pathlib.Path, *args: str, timeout: float = 300) -> str:
    argv = [ctr, f"--address={sock}", f"--namespace={NAMESPACE}", *args]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    if result.returncode != 0:
        raise CtrError(f"ctr {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def images(ctr: str, sock: pathlib.Path) -> set[str]:
    return set(_ctr(ctr, sock, "images", "list", "--quiet").split())


def import_archive(ctr: str, sock: pathlib.Path, archive: pathlib.Path) -> list[str]:
    """Import (and unpack) a docker-archive or OCI tar; returns the references it holds."""
    before = images(ctr, sock)
    _ctr(ctr, sock, "images", "import", str(archive))
    named = archive_references(archive)
    return sorted(named or images(ctr, sock) - before)


def archive_references(archive: pathlib.Path) -> set[str]:
    """The image references a docker-archive's manifest names (none for OCI layouts)."""
    with tarfile.open(archive) as tar:
        try:
            member = tar.extractfile("manifest.json")
        except KeyError:
            return set()
        manifest = json.loads(member.read()) if member else []
    return {tag for entry in manifest for tag in entry.get("RepoTags") or []}


def remove_all_containers(ctr: str, sock: pathlib.Path) -> int:
    """Kill and delete every task and container (pods and their sandboxes)."""
    ids = _ctr(ctr, sock, "containers", "list", "--quiet").split()
    tasks = [line.split()[0] for line in _ctr(ctr, sock, "tasks", "list").splitlines()[1:]]
    if tasks:
        _ctr(ctr, sock, "tasks", "delete", "--force", *tasks)
    if ids:
        _ctr(ctr, sock, "containers", "delete", *ids)
    return len(ids)
