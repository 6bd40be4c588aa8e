"""What running a third-party server as a subprocess takes, shared by the runners of
llama-server and Jaeger: the cached binary a hack/ build script prints, a free loopback
port, the tail of a log that explains a failed start, and stopping it."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
from typing import IO

from trimtab_dev.devcluster import commands

_STOP_TIMEOUT_S = 10.0
_TAIL_BYTES = 4000


def repo_root(marker: pathlib.Path) -> pathlib.Path:
    """The checkout this file is in: the first directory above it holding `marker`."""
    for parent in pathlib.Path(__file__).resolve().parents:
        if (parent / marker).is_file():
            return parent
    raise RuntimeError(f"no {marker} above {__file__}: not run from a checkout?")


def built_binary(script: pathlib.Path) -> pathlib.Path:
    """The path a hack/ build script prints last, building (once) if it must; the
    build's progress goes to stderr, left to the caller's terminal."""
    path = repo_root(script) / script
    result = subprocess.run(["bash", str(path)], stdout=subprocess.PIPE, text=True, check=True)
    lines = result.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"{path} printed no path")
    found = pathlib.Path(lines[-1])
    if not found.is_file():
        raise RuntimeError(f"{path} printed {found}, which is not a file")
    return found


def free_port() -> int:
    """A port free on 127.0.0.1 now; another process may take it before it is bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(stream: IO[bytes]) -> str:
    """The end of a log file a running server is still writing."""
    # pread leaves the file offset alone: the server shares it.
    fd = stream.fileno()
    size = os.fstat(fd).st_size
    start = max(0, size - _TAIL_BYTES)
    return os.pread(fd, size - start, start).decode("utf-8", errors="replace")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited in time."""
    commands.stop(proc, timeout=_STOP_TIMEOUT_S)
