"""Command lines for running Trimtab's own processes locally (the operator and the
inference simulator), shared by the demo, the test harness and the benchmarks so they
all start them the way a user would, with this Python; and stopping them."""

from __future__ import annotations

import pathlib
import subprocess
import sys


def operator_argv(namespace: str, redis_url: str, *, health_port: int) -> list[str]:
    """`trimtab operator run` for one namespace, standalone, without a metrics port."""
    return [
        sys.executable, "-m", "trimtab", "operator", "run",
        "-n", namespace,
        "--standalone",
        "--redis-url", redis_url,
        "--metrics-port", "0",
        "--health-port", str(health_port),
    ]  # fmt: skip


def simulator_argv(port: int, config: pathlib.Path) -> list[str]:
    """`trimtab simulate serve` on a loopback port with a YAML or JSON config."""
    return [
        sys.executable, "-m", "trimtab", "simulate", "serve",
        "--port", str(port),
        "--config", str(config),
    ]  # fmt: skip


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM (a graceful drain), then SIGKILL if it has not exited within `timeout`."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
