"""`trimtab api serve` as its own process, for tests: the real server on a free
loopback port, with or without auth."""

from __future__ import annotations

import contextlib
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx

from tests.harness import redis_server


@contextlib.contextmanager
def running_api(
    redis_url: str,
    log: pathlib.Path,
    *,
    kubeconfig: str | None = None,
    no_auth: bool = False,
    extra: tuple[str, ...] = (),
) -> Iterator[str]:
    """Yields the server's base URL (http://127.0.0.1:PORT)."""
    port = redis_server.free_port()
    argv = [sys.executable, "-m", "trimtab", "api", "serve", "--port", str(port),
            "--redis-url", redis_url, *extra]  # fmt: skip
    if kubeconfig:
        argv += ["--kubeconfig", kubeconfig]
    if no_auth:
        argv.append("--no-auth")
    out = open(log, "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(argv, stdout=out, stderr=out, env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


def _wait(url: str, proc: subprocess.Popen[bytes], log: pathlib.Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API server exited with {proc.returncode}: {log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer: {log.read_text()[-2000:]}")
