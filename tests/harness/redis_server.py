"""A real redis-server on a free loopback port, in a throwaway directory."""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator

import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_redis(workdir: pathlib.Path, *, args: tuple[str, ...] = ()) -> Iterator[str]:
    """Start redis-server, yield its URL, stop it. Persistence is off: tests own the data.

    `args` are extra redis-server options; the URL is the plain port's, so a server
    given `--port 0` and a TLS port is reached through `secured_redis` instead.
    """
    port = free_port()
    proc = _start(workdir, ["--port", str(port), *args])
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_ping(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _start(workdir: pathlib.Path, args: list[str]) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found: run hack/install-deps.sh")
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)]
    return subprocess.Popen(
        [binary, *common, "--protected-mode", "yes", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )


def make_tls_files(directory: pathlib.Path) -> pathlib.Path:
    """A CA and a server certificate for 127.0.0.1 signed by it, made with openssl;
    returns the CA bundle's path (server.crt and server.key sit beside it)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca, key, crt = directory / "ca.crt", directory / "server.key", directory / "server.crt"
    openssl = ["openssl", "req", "-x509", *ec, "-days", "2", "-subj"]
    subprocess.run(
        [*openssl, "/CN=test-ca", "-keyout", str(directory / "ca.key"), "-out", str(ca)],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *openssl,
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-CA",
            str(ca),
            "-CAkey",
            str(directory / "ca.key"),
            "-keyout",
            str(key),
            "-out",
            str(crt),
        ],
        check=True,
        capture_output=True,
    )
    return ca


@contextlib.contextmanager
def secured_redis(workdir: pathlib.Path, password: str) -> Iterator[tuple[str, pathlib.Path]]:
    """A redis-server that requires `password` and speaks only TLS; yields its
    rediss:// URL and the CA bundle that verifies it."""
    ca = make_tls_files(workdir)
    port = free_port()
    tls = ["--tls-port", str(port), "--port", "0", "--tls-auth-clients", "no"]
    files = ["--tls-cert-file", str(workdir / "server.crt"), "--tls-key-file"]
    files += [str(workdir / "server.key"), "--tls-ca-cert-file", str(ca)]
    proc = _start(workdir, [*tls, *files, "--requirepass", password])
    url = f"rediss://127.0.0.1:{port}/0"
    try:
        wait_ping(url, proc, password=password, ssl_ca_certs=str(ca))
        yield url, ca
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclasses.dataclass
class Node:
    """One redis-server process of a replicated or clustered test setup."""

    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def wait_until_all(nodes: list[Node], check: Callable[[redis.Redis], bool], what: str) -> None:
    """Until `check` holds on every node's client; RuntimeError naming `what` after 30 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(check(redis.Redis(port=n.port)) for n in nodes):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} within 30 s")


def stop_all(nodes: list[Node]) -> None:
    """Stop every node still running (SIGTERM, then wait)."""
    for node in nodes:
        if node.proc.poll() is None:
            node.proc.terminate()
    for node in nodes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.proc.wait(timeout=10)


def wait_ping(url: str, proc: subprocess.Popen[bytes], **options: str) -> None:
    client = redis.Redis.from_url(url, **options)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}")
        with contextlib.suppress(redis.ConnectionError):
            if client.ping():
                return
        time.sleep(0.05)
    raise RuntimeError("redis-server did not answer PING within 10 s")


class RestartableRedis:
    """A redis-server with AOF persistence on a fixed port and directory, so it can be
    stopped (gracefully or with SIGKILL) and started again on the same data."""

    def __init__(self, workdir: pathlib.Path, *, appendfsync: str) -> None:
        self.workdir, self.appendfsync = workdir, appendfsync
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server") or "redis-server"
        self.proc = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.workdir),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                self.appendfsync,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        wait_ping(self.url, self.proc)

    def stop(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)
