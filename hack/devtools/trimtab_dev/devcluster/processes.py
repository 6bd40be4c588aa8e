"""Starting and stopping cluster processes, tracked by pid files.

`down` must stop exactly what `up` started and nothing else, even after a reboot
recycled pids: a pid counts as ours only while its executable matches the one we
launched.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import time

from trimtab_dev.devcluster import components


def pid_file(pids: pathlib.Path, name: str) -> pathlib.Path:
    return pids / f"{name}.pid"


def _read_pid(path: pathlib.Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _runs(exe: str, binary: str) -> bool:
    return os.path.realpath(binary) == exe or os.path.basename(binary) == os.path.basename(exe)


def _is_ours(pid: int, comp: components.Component) -> bool:
    """True when `pid` is alive and runs `comp`'s binary (not a recycled pid), or still
    runs the launcher that is about to exec it (`nsenter ... -- binary`)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    # A rebuilt binary shows as "<path> (deleted)" for a process started before it.
    exe = exe.removesuffix(" (deleted)")
    return _runs(exe, comp.binary) or _runs(exe, comp.argv[0])


def running_pid(pids: pathlib.Path, comp: components.Component) -> int | None:
    """The pid of `comp` if the process its pid file names is alive and is `comp`."""
    pid = _read_pid(pid_file(pids, comp.name))
    if pid is not None and _is_ours(pid, comp):
        return pid
    return None


def start(comp: components.Component, *, pids: pathlib.Path, logs: pathlib.Path) -> int:
    """Start `comp` detached from the caller's session, logging to its own file."""
    pids.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{comp.name}.log", "ab") as log:
        proc = subprocess.Popen(
            comp.argv,
            env={**os.environ, **dict(comp.env)},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    pid_file(pids, comp.name).write_text(f"{proc.pid}\n")
    return proc.pid


def stop(comp: components.Component, *, pids: pathlib.Path, timeout: float = 15.0) -> bool:
    """Stop `comp` (TERM, then KILL after `timeout`); True if it was running."""
    pid = running_pid(pids, comp)
    path = pid_file(pids, comp.name)
    if pid is None:
        path.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _is_ours(pid, comp) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.05)
    if _is_ours(pid, comp):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _reap(pid)
    path.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    """Collect `pid` if it is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid`, from /proc."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
