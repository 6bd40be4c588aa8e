#!/usr/bin/env python3
"""Throughput of small jobs: Trimtab beside arq, Celery, RQ and Dramatiq on one Redis.

Two job shapes, each the same everywhere (hack/bench/peers says how each framework runs
them): `echo`, one HTTP POST of a small JSON body to the inference simulator's
`/tools/echo` through a pooled client, returning the response JSON; and `return`, a job
that only returns (for Trimtab, a step answered from its response cache): the
framework's own ceiling. For Trimtab each job is a one-step workflow run, so it also
does Trimtab's durability work: the run record, atomic completion, enqueueing
dependents (none here) and the run's event stream.

For each framework and worker-process count, on a freshly flushed dedicated
redis-server: start the workers and wait until every one is consuming (startup is not
measured), then time from the first enqueue to the last completion as seen in Redis
(hack/bench/peers/drivers.py says how each framework's completion is read). Enqueue
time counts. Beside jobs/s, CPU ms/job: the CPU all the benchmark's processes used in
that interval, per job, which stays meaningful when other work shares the machine.
Prints figures; asserts nothing.

    hack/bench/throughput.py [--jobs 3000] [--workers 1,2,4] [--frameworks trimtab,arq,...]
                             [--shapes echo,return]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
import redis
from peers import drivers

HERE = pathlib.Path(__file__).resolve().parent
FRAMEWORKS = ["trimtab", "arq", "celery", "rq", "dramatiq"]
SHAPES = ["echo", "return"]
READY_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 120.0
PROBE_CHUNK = 200  # jobs checked per poll, oldest first: finishing is roughly FIFO
TICK = os.sysconf("SC_CLK_TCK")
GROUPS: set[int] = set()  # process groups of everything started here


@dataclasses.dataclass
class Row:
    framework: str
    workers: int
    jobs: int
    seconds: float | None = None
    enqueue_seconds: float = 0.0
    cpu_seconds: float = 0.0
    good: int = 0
    note: str = ""

    @property
    def rate(self) -> float | None:
        return self.jobs / self.seconds if self.seconds else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def process(cmd: list[str], log: pathlib.Path, env: dict[str, str]) -> Iterator[Any]:
    """A subprocess in its own process group, SIGTERMed (then SIGKILLed) on exit."""
    out = open(log, "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, stdout=out, stderr=out, env=env, start_new_session=True)
    GROUPS.add(proc.pid)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
        # A forking worker's children share its group: kill any it left behind.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        GROUPS.discard(proc.pid)
        out.close()


def cpu_seconds() -> float:
    """CPU used so far by this process and every live process started here (workers,
    their forks, redis-server, the simulator). The machine is shared, so wall time is
    noisy; CPU per job is the steadier measure of each framework's cost."""
    ticks = 0
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # from field 3, state
            if int(fields[2]) in GROUPS:  # pgrp
                ticks += int(fields[11]) + int(fields[12])  # utime + stime
    own = os.times()
    return ticks / TICK + own.user + own.system


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.ConnectionError, httpx.HTTPError):
            if check():
                return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


def wait_done(r: redis.Redis, driver: Any, jobs: list[str], deadline: float) -> None:
    pending = list(jobs)
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} of {len(jobs)} jobs unfinished")
        chunk, rest = pending[:PROBE_CHUNK], pending[PROBE_CHUNK:]
        pipe = r.pipeline(transaction=False)
        for job in chunk:
            driver.probe(pipe, job)
        replies = pipe.execute()
        left = [job for job, reply in zip(chunk, replies, strict=True) if not driver.done(reply)]
        pending = left + rest
        if left:
            time.sleep(0.02)


def measure(
    driver: Any, n: int, m: int, r: redis.Redis, tmp: pathlib.Path, env: dict[str, str]
) -> Row:
    row = Row(driver.name, n, m)
    r.flushall()
    driver.setup()
    with contextlib.ExitStack() as stack:
        for i, cmd in enumerate(driver.worker_cmds(n)):
            stack.enter_context(process(cmd, tmp / f"{driver.name}-{n}-{i}.log", env))
        try:
            wait_for(lambda: driver.ready(r, n), READY_TIMEOUT_S, f"{driver.name} workers")
            time.sleep(0.5)  # let the last worker reach its first blocking read
            cpu0, t0 = cpu_seconds(), time.perf_counter()
            jobs = driver.enqueue(m)
            row.enqueue_seconds = time.perf_counter() - t0
            wait_done(r, driver, jobs, time.monotonic() + RUN_TIMEOUT_S)
            row.seconds = time.perf_counter() - t0
            row.cpu_seconds = cpu_seconds() - cpu0
            row.good = driver.good(r, jobs)
        except Exception as exc:  # report and go on with the other measurements
            row.note = f"{type(exc).__name__}: {exc}"
    return row


def print_table(shape: str, rows: list[Row]) -> None:
    trimtab = {row.workers: row.rate for row in rows if row.framework == "trimtab"}
    print(f"\njob: {shape}")
    print(
        f"{'framework':<10}{'workers':>8}{'jobs':>7}{'seconds':>9}{'enqueue s':>11}"
        f"{'jobs/s':>9}{'vs trimtab':>12}{'CPU ms/job':>12}  note"
    )
    for row in rows:
        base = trimtab.get(row.workers)
        ratio = f"{row.rate / base:.2f}x" if row.rate and base else "-"
        secs = f"{row.seconds:.2f}" if row.seconds else "-"
        rate = f"{row.rate:.0f}" if row.rate else "-"
        cpu = f"{1000 * row.cpu_seconds / row.jobs:.2f}" if row.seconds else "-"
        note = row.note or ("" if row.good == row.jobs else f"only {row.good} results are echo")
        print(
            f"{row.framework:<10}{row.workers:>8}{row.jobs:>7}{secs:>9}"
            f"{row.enqueue_seconds:>11.2f}{rate:>9}{ratio:>12}{cpu:>12}  {note}"
        )


def versions(frameworks: list[str]) -> str:
    dist = {"trimtab": "trimtab"}
    return ", ".join(f"{f} {importlib.metadata.version(dist.get(f, f))}" for f in frameworks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--workers", default="1,2,4", help="worker process counts")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--shapes", default=",".join(SHAPES), help="job shapes: echo, return")
    args = parser.parse_args()
    shapes = [s for s in args.shapes.split(",") if s]
    if set(shapes) - set(SHAPES):
        parser.error(f"unknown shapes: {', '.join(sorted(set(shapes) - set(SHAPES)))}")
    counts = [int(n) for n in args.workers.split(",")]
    frameworks = [f for f in args.frameworks.split(",") if f]
    unknown = set(frameworks) - set(FRAMEWORKS)
    if unknown:
        parser.error(f"unknown frameworks: {', '.join(sorted(unknown))}")
    # SIGTERM (e.g. a timeout) unwinds like Ctrl-C, so every subprocess is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"{os.cpu_count()} CPUs; {versions(frameworks)}; {args.jobs} jobs per measurement")

    with tempfile.TemporaryDirectory(prefix="trimtab-bench-") as tmpdir:
        tmp = pathlib.Path(tmpdir)
        redis_port, sim_port = free_port(), free_port()
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
        # The peers' job modules read these at import, in the workers and in this process.
        env["BENCH_REDIS_URL"] = os.environ["BENCH_REDIS_URL"] = redis_url
        echo = f"http://127.0.0.1:{sim_port}/tools/echo"
        env["BENCH_ECHO_URL"] = os.environ["BENCH_ECHO_URL"] = echo
        sim_cfg = tmp / "sim.yaml"
        sim_cfg.write_text('{"seed": 1, "tool_delay_seconds": 0.0}\n')
        redis_cmd = ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port)]
        redis_cmd += ["--save", "", "--appendonly", "no", "--dir", str(tmp)]
        sim_cmd = [sys.executable, "-m", "trimtab", "simulate", "serve"]
        sim_cmd += ["--port", str(sim_port), "--config", str(sim_cfg)]
        tables: dict[str, list[Row]] = {shape: [] for shape in shapes}
        with (
            process(redis_cmd, tmp / "redis.log", env),
            process(sim_cmd, tmp / "sim.log", env),
        ):
            r = redis.Redis.from_url(redis_url)
            wait_for(r.ping, 15, "redis-server")
            health = f"http://127.0.0.1:{sim_port}/healthz"
            wait_for(lambda: httpx.get(health, timeout=1).status_code == 200, 15, "simulator")
            for shape in shapes:
                env["BENCH_SHAPE"] = os.environ["BENCH_SHAPE"] = shape
                for name in frameworks:
                    driver = drivers.make(name, redis_url, sim_port, tmp)
                    for n in counts:
                        row = measure(driver, n, args.jobs, r, tmp, env)
                        rate = f"{row.rate:.0f} jobs/s" if row.rate else row.note
                        print(f"  {shape}: {name} x{n}: {rate}", flush=True)
                        tables[shape].append(row)
            r.close()
    for shape, rows in tables.items():
        print_table(shape, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
