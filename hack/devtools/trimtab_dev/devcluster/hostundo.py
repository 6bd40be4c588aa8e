"""Undoing the host changes a cluster's record lists (see `host` for what they are).

Every undo is idempotent and tolerates a change that was recorded but never made, so
`down` after a crash at any point of `up` leaves the host as it was. What cannot be
undone yet (a busy mount, a cgroup with a process that will not die) stays in the
record and is reported, so the next `down` tries again.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import pathlib
import signal
import time
from collections.abc import Callable

from trimtab_dev.devcluster import host, runtime
from trimtab_dev.devcluster import hostrecord as rec

_MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def _umount(point: pathlib.Path) -> None:
    path = os.fsencode(point)
    if _libc.umount2(path, 0) != 0 and _libc.umount2(path, _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err != 22:  # EINVAL: not a mount point (any more)
            raise OSError(err, f"umount {point}: {os.strerror(err)}")


def _unmount_all(prefix: str) -> None:
    for _ in range(5):  # a path may carry stacked mounts; each pass peels one layer
        points = host.mounts_under(pathlib.Path(prefix))
        if not points:
            return
        for point in points:
            _umount(point)
    raise OSError(f"mounts left under {prefix}")


def _undo_netns(path: str) -> None:
    with contextlib.suppress(OSError):
        _umount(pathlib.Path(path))
    pathlib.Path(path).unlink(missing_ok=True)


def _ip(*argv: str) -> None:
    result = host.run("ip", *argv, check=False)
    gone = ("Cannot find device", "No such process", "does not exist")
    if result.returncode != 0 and not any(g in result.stderr for g in gone):
        raise OSError(f"ip {' '.join(argv)}: {result.stderr.strip()}")


def _procs() -> list[tuple[int, list[str]]]:
    """(pid, argv) of every process (kernel threads have no argv and are left out)."""
    found = []
    for proc in pathlib.Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                raw = (proc / "cmdline").read_bytes()
                if raw:
                    found.append((int(proc.name), raw.decode(errors="replace").split("\0")))
    return found


def _argvs() -> list[list[str]]:
    return [argv for _, argv in _procs()]


def _pids_of(predicate: Callable[[list[str]], bool]) -> list[int]:
    return [pid for pid, argv in _procs() if predicate(argv)]


def _shim_ids(socket: str) -> list[str]:
    """Container ids of the live shims of the containerd at `socket` (its -address)."""
    ids = []
    for argv in _argvs():
        if argv[0].endswith("containerd-shim-runc-v2") and socket in argv and "-id" in argv:
            ids.append(argv[argv.index("-id") + 1])
    return ids


def _kill_shims(socket: str) -> None:
    """containerd shims outlive containerd; killed, they leave their socket behind."""
    ids = _shim_ids(socket)
    _kill_and_wait(
        lambda: _pids_of(lambda a: a[0].endswith("containerd-shim-runc-v2") and socket in a)
    )
    for cid in ids:
        shim_socket(socket, cid).unlink(missing_ok=True)


def shim_socket(containerd_socket: str, container_id: str) -> pathlib.Path:
    """Where containerd 1.6 puts a shim's socket (runtime/v2/shim.SocketAddress)."""
    key = f"{containerd_socket}/{runtime.NAMESPACE}/{container_id}"
    return pathlib.Path("/run/containerd/s", hashlib.sha256(key.encode()).hexdigest())


def _cgroup_procs(subtree: str) -> list[int]:
    pids: set[int] = set()
    for root in host.cgroup_hierarchies():
        for procs in (root / subtree).rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in procs.read_text().split())
    return sorted(pids)


def _kill_and_wait(find: Callable[[], list[int]], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while pids := find():
        if time.monotonic() > deadline:
            raise OSError(f"processes {pids} did not exit")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def _rmdir_cgroups(subtree: str) -> None:
    for root in host.cgroup_hierarchies():
        top = root / subtree
        if not top.exists():
            continue
        dirs = [d for d in top.rglob("*") if d.is_dir()]
        for d in [*sorted(dirs, key=lambda p: len(p.parts), reverse=True), top]:
            d.rmdir()
        # The shared parent goes with the last cluster that used it.
        with contextlib.suppress(OSError):
            (root / host.CGROUP_PARENT).rmdir()


def _rmdir_if_empty(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if any(pathlib.Path(path).iterdir()):
            raise OSError(f"{path} is not empty: left in place")
        os.rmdir(path)


def _undo_one(change: rec.Change) -> None:
    actions: dict[rec.Kind, Callable[[], None]] = {
        rec.Kind.SHIMS: lambda: _kill_shims(change.target),
        rec.Kind.CGROUP_PROCS: lambda: _kill_and_wait(lambda: _cgroup_procs(change.target)),
        rec.Kind.MOUNTS: lambda: _unmount_all(change.target),
        rec.Kind.NETNS: lambda: _undo_netns(change.target),
        rec.Kind.ROUTE: lambda: _ip("route", "del", change.target, "dev", change.detail),
        rec.Kind.LINK: lambda: _ip("link", "del", change.target),
        rec.Kind.CGROUP: lambda: _rmdir_cgroups(change.target),
        rec.Kind.DIR: lambda: _rmdir_if_empty(change.target),
    }
    actions[change.kind]()


def _remove_log_links(root: pathlib.Path) -> None:
    for link in _entries("/var/log/containers"):
        if link.is_symlink() and str(link.readlink()).startswith(f"{root}/"):
            link.unlink()


def _remove_cni_results(cni_prefix: str) -> None:
    results = _entries("/var/lib/cni/results")
    # <network>-<container id>-<interface>: our networks name our containers' ids, whose
    # loopback results (network "cni-loopback") go too.
    ids = {r.name.rsplit("-", 2)[-2] for r in results if r.name.startswith(cni_prefix)}
    for result in results:
        if result.name.count("-") >= 2 and result.name.rsplit("-", 2)[-2] in ids:
            result.unlink()


def remove_left_files(root: pathlib.Path, cni_prefix: str) -> None:
    """What the node processes left in the shared directories: log symlinks into our
    state dir, CNI results of our networks, and the kubelet's device-plugin files once
    no kubelet runs on the host any more."""
    _remove_log_links(root)
    _remove_cni_results(cni_prefix)
    if not _pids_of(lambda argv: os.path.basename(argv[0]) == "kubelet"):
        for name in ("kubelet.sock", "kubelet_internal_checkpoint"):
            pathlib.Path("/var/lib/kubelet/device-plugins", name).unlink(missing_ok=True)


def _entries(directory: str) -> list[pathlib.Path]:
    path = pathlib.Path(directory)
    return list(path.iterdir()) if path.is_dir() else []


def _hand_over(record: pathlib.Path, change: rec.Change) -> bool:
    """A shared directory another cluster still uses (its files are in it) becomes that
    cluster's to remove: its record gets the entry. False if no other cluster is up."""
    if change.kind is not rec.Kind.DIR:
        return False
    others = [r for r in record.parent.parent.glob(f"*/{record.name}") if r != record]
    if others:
        rec.add(others[0], change)
    return bool(others)


def undo(record: pathlib.Path) -> list[str]:
    """Undo every recorded change; returns the problems with those that stay recorded."""
    problems = []
    for change in rec.undo_order(rec.load(record)):
        try:
            _undo_one(change)
        except OSError as exc:
            if not _hand_over(record, change):
                problems.append(f"{change.kind.name.lower()} {change.target}: {exc}")
                continue
        rec.remove(record, change)
    return problems
