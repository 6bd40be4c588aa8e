"""Running kopf handlers against the test cluster: in-process or as a subprocess."""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping

from kopf.testing import KopfRunner

from tests.harness import redis_server
from trimtab_dev.devcluster import commands


def kopf_args(handlers: pathlib.Path, namespace: str) -> list[str]:
    return ["run", "--standalone", "--namespace", namespace, "--verbose", str(handlers)]


@contextlib.contextmanager
def in_process(handlers: pathlib.Path, namespace: str) -> Iterator[KopfRunner]:
    """kopf in a thread of this process (KopfRunner); failures surface in the test."""
    with KopfRunner(kopf_args(handlers, namespace), timeout=60) as runner:
        yield runner
    assert runner.exception is None, runner.exception
    assert runner.exit_code == 0, runner.output


@contextlib.contextmanager
def subprocess_operator(
    handlers: pathlib.Path, namespace: str, log: pathlib.Path
) -> Iterator[subprocess.Popen[bytes]]:
    """kopf as its own process, the way the operator runs in a pod; log kept for failures."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kopf", *kopf_args(handlers, namespace)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )
    try:
        time.sleep(0.1)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def trimtab_operator(
    namespace: str, redis_url: str, *, env: Mapping[str, str] | None = None
) -> Iterator[KopfRunner]:
    """Trimtab's own operator (trimtab.handlers) in-process, watching one namespace;
    `env` adds settings (trimtab.config), e.g. the Redis URL its worker pods get."""
    env = {"TRIMTAB_REDIS_URL": redis_url, "TRIMTAB_METRICS_PORT": "0", **(env or {})}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        args = ["run", "--standalone", "--namespace", namespace, "-m", "trimtab.handlers"]
        with KopfRunner(args, timeout=60) as runner:
            yield runner
        assert runner.exception is None, runner.exception
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def start_operator_process(
    namespace: str, redis_url: str, log: pathlib.Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`trimtab operator run`, the command users run, as its own process; output to `log`."""
    argv = commands.operator_argv(namespace, redis_url, health_port=redis_server.free_port())
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=out, env=env)
