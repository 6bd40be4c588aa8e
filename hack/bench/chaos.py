#!/usr/bin/env python3
"""Chaos: a fan-out and join DAG (a -> b, c, d -> e) under worker SIGKILLs and SIGSTOPs
on a seeded schedule, one Redis SIGKILL with an AOF restart, and poison messages.

Real parts throughout: worker processes (`trimtab worker run`), a redis-server with the
append-only file (`appendfsync always`), the inference simulator's tool endpoints.
Runs are submitted at a steady rate with idempotency keys, and all are submitted again
at the end. A killed worker is replaced at once; a stopped one is resumed after the
visibility timeout plus 2 s, so its late calls meet the fence. Only a ready worker (its
/readyz answers 200) is signalled, and only while another ready one remains to take
over its steps; until then the next signal waits. A process still starting holds
nothing, and with no worker ready, the delay measured would be how long a replacement
takes to start, not how long redelivery takes.

Checks, and exits 1 when one fails: every run ends and succeeds (none lost, none stuck),
every step completes exactly once, a resubmission returns the same run, tool calls never
outnumber deliveries, and exactly the poison messages reach the dead-letter stream.
Prints the redelivery delay (a dead or stalled worker's step, from the signal to its
next start) at p50/p99/max beside the goal, visibility timeout + 5 s.

    hack/bench/chaos.py            the benchmark: 600 runs, 210 SIGKILLs, 3-7 minutes
    hack/bench/chaos.py --small    CI: 100 runs, 30 SIGKILLs, about a minute
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import _local
import httpx
import redis

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import connection, keys, messages, wire
from trimtab.sdk import Client
from trimtab_dev.devcluster import commands

NS, POOL, WF = "chaos", "p", "fanout"
STEPS = ("a", "b", "c", "d", "e")
VISIBILITY_S, CONCURRENCY, WORKERS, SEED = 3, 8, 5, 20261202
SIZES = {"full": (600, 210, 120.0), "small": (100, 30, 30.0)}  # runs, SIGKILLs, seconds
POISON = 3


class Redis:
    """redis-server with the append-only file, on a fixed port, restartable."""

    def __init__(self, work: pathlib.Path) -> None:
        self.port, self.work = _local.free_port(), work
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port)]
        argv += ["--dir", str(self.work), "--save", "", "--appendonly", "yes"]
        argv += ["--appendfsync", "always"]  # a SIGKILL loses nothing acknowledged
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        _local.wait_for(lambda: redis.Redis.from_url(self.url).ping(), "redis-server")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()


class Fleet:
    """The worker processes, each named by HOSTNAME so its pending steps can be found."""

    def __init__(self, manifest: pathlib.Path, redis_url: str, logs: pathlib.Path) -> None:
        self.manifest, self.redis_url, self.logs = manifest, redis_url, logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}  # name -> its metrics port, where /readyz answers
        self.stopped: dict[str, float] = {}  # name -> when to resume (monotonic)
        self.serial = self.kills = self.stops = 0
        self.waited_s = 0.0  # how long due signals waited for two ready workers

    def spawn(self) -> None:
        self.serial += 1
        name = f"chaos-w{self.serial}"
        self.ports[name] = _local.free_port()
        argv = [sys.executable, "-m", "trimtab", "worker", "run", "-f", str(self.manifest),
                "--redis-url", self.redis_url, "--metrics-port", str(self.ports[name])]  # fmt: skip
        with open(self.logs / f"{name}.log", "wb") as log:
            env = {**os.environ, "HOSTNAME": name}
            self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=log, env=env)

    def resume_due(self) -> None:
        for name, at in list(self.stopped.items()):
            if time.monotonic() >= at:
                self.procs[name].send_signal(signal.SIGCONT)
                del self.stopped[name]

    async def ready(self, http: httpx.AsyncClient) -> set[str]:
        """The running (not stopped) workers whose readiness probe answers 200."""
        out = set()
        for name in sorted(set(self.procs) - set(self.stopped)):
            with contextlib.suppress(httpx.HTTPError):
                probe = await http.get(f"http://127.0.0.1:{self.ports[name]}/readyz")
                if probe.status_code == 200:
                    out.add(name)
        return out

    def hit(self, rng: random.Random, ready: set[str]) -> tuple[str, int] | None:
        """Signal a random worker among the `ready` ones: SIGKILL (replaced at once) or
        SIGSTOP. None, signalling nobody, while fewer than two are ready: the signalled
        worker's steps need another to take them over."""
        up = sorted(ready & set(self.procs) - set(self.stopped))
        if len(up) < 2:
            return None
        name = rng.choice(up)
        if rng.random() < 0.8 or len(self.stopped) >= 2:
            self.procs.pop(name).kill()
            self.kills += 1
            self.spawn()
            return name, signal.SIGKILL
        self.procs[name].send_signal(signal.SIGSTOP)
        self.stopped[name] = time.monotonic() + VISIBILITY_S + 2
        self.stops += 1
        return name, signal.SIGSTOP

    def close(self) -> None:
        for name, proc in self.procs.items():
            if name in self.stopped:
                proc.send_signal(signal.SIGCONT)
            commands.stop(proc)


def _spec(tools: str) -> awf.AgentWorkflowSpec:
    def tool(name: str, body: str, *deps: str) -> dict[str, Any]:
        return {"name": name, "kind": "tool", "dependsOn": list(deps),
                "tool": {"url": f"{tools}/{name}", "body": body}}  # fmt: skip

    fan = '{"i": {{ a.received.i }}}'
    steps = [tool("a", '{"i": {{ inputs.i }}}'), tool("b", fan, "a"), tool("c", fan, "a"),
             tool("d", fan, "a"), tool("e", '{"n": 3}', "b", "c", "d")]  # fmt: skip
    return awf.AgentWorkflowSpec.model_validate({"defaultPool": POOL, "steps": steps})


async def _patient(call: Any) -> Any:
    """`call()` again until Redis answers (it is down for a moment mid-run)."""
    while True:
        try:
            return await call()
        except connection.UNAVAILABLE:
            await asyncio.sleep(0.2)


async def _submit(client: Client, i: int) -> str:
    return await client.submit(NS, WF, {"i": i}, idempotency_key=f"k{i}")


async def _held_by(client: Client, name: str) -> list[tuple[str, str]]:
    """The (run id, step) pairs the worker process `name` holds pending."""
    stream, out = keys.pool_stream(NS, POOL), []
    for c in await client.redis.xinfo_consumers(stream, keys.GROUP):
        if not str(c["name"]).startswith(f"{name}-") or not c["pending"]:
            continue
        for p in await client.redis.xpending_range(
            stream, keys.GROUP, "-", "+", 100, consumername=c["name"]
        ):
            found: Any = await client.redis.xrange(stream, p["message_id"], p["message_id"])
            if found:
                task = messages.decode(found[0][1])
                out.append((task.run_id, task.step))
    return out


@dataclasses.dataclass
class Watch:
    """Steps a signalled worker held, until another worker starts each again."""

    waiting: dict[tuple[str, str], tuple[float, str, str]] = dataclasses.field(default_factory=dict)
    delays: list[tuple[str, float, float]] = dataclasses.field(default_factory=list)  # sig, at, s

    async def poll(self, client: Client) -> None:
        for (run, step), (at_ms, name, sig) in list(self.waiting.items()):
            raw: Any = await client.redis.hmget(
                keys.run(NS, run),
                [
                    wire.step_field(step, f)
                    for f in (wire.StepField.STARTED_MS, wire.StepField.WORKER)
                ],
            )
            started, worker = raw
            if started and float(started) > at_ms and not str(worker).startswith(f"{name}-"):
                self.delays.append((sig, at_ms, (float(started) - at_ms) / 1000))
                del self.waiting[(run, step)]


async def _poison(client: Client) -> None:
    stream = keys.pool_stream(NS, POOL)
    for step, gen in (("a", 99), ("ghost", 1)):
        task = messages.Task(
            namespace=NS, run_id=f"poison-{step}", step=step, attempt=1, workflow=WF,
            generation=gen, enqueued_ms=time.time() * 1000,
        )  # fmt: skip
        flat = task.encode()
        await client.redis.xadd(stream, dict(zip(flat[::2], flat[1::2], strict=True)))
    await client.redis.xadd(stream, {"junk": "not a task"})


async def _chaos(client: Client, fleet: Fleet, srv: Redis, size: str, watch: Watch) -> list[str]:
    runs_n, kills, seconds = SIZES[size]
    rng = random.Random(SEED)
    refs: list[str] = []
    t0 = time.monotonic()
    killed_redis = poisoned = False
    next_hit, held_since = t0 + 2, 0.0  # held_since: when a due signal found too few ready
    http = httpx.AsyncClient(timeout=0.5)
    while len(refs) < runs_n or fleet.kills < kills:
        now = time.monotonic()
        due = min(runs_n, int((now - t0) / seconds * runs_n) + 1)
        while len(refs) < due:
            refs.append(await _patient(functools.partial(_submit, client, len(refs))))
        fleet.resume_due()
        hit = None
        if now >= next_hit and fleet.kills < kills:
            hit = fleet.hit(rng, await fleet.ready(http))
            if hit is None:
                held_since = held_since or now
        if hit is not None:
            fleet.waited_s += now - held_since if held_since else 0.0
            held_since = 0.0
            next_hit = now + seconds / kills
            name, sig = hit
            at_ms = time.time() * 1000
            for held in await _patient(functools.partial(_held_by, client, name)):
                watch.waiting.setdefault(held, (at_ms, name, signal.Signals(sig).name))
        if not poisoned and now - t0 > seconds / 4:
            await _patient(lambda: _poison(client))
            poisoned = True
        if not killed_redis and now - t0 > seconds / 2:
            srv.kill()
            await asyncio.sleep(1.0)
            srv.start()
            killed_redis = True
        await _patient(lambda: watch.poll(client))
        await asyncio.sleep(0.05)
    await http.aclose()
    return refs


async def _settle(client: Client, fleet: Fleet, refs: list[str], watch: Watch) -> list[str]:
    """Every run's status once all have ended, or after three minutes."""
    deadline = time.monotonic() + 180
    while True:
        fleet.resume_due()
        await _patient(lambda: watch.poll(client))
        states = [await client.get(r) for r in refs]
        statuses = [s.status for s in states]
        ended = all(s in (wire.RunStatus.SUCCEEDED, wire.RunStatus.FAILED) for s in statuses)
        if ended or time.monotonic() > deadline:
            return [str(s) for s in statuses]
        await asyncio.sleep(0.5)


async def _audit(
    client: Client, refs: list[str], statuses: list[str], tools: str
) -> dict[str, Any]:
    once = twice = 0
    deliveries = 0
    for ref in refs:
        done = [
            e["step"] for e in [e async for e in client.events(ref)] if e["type"] == "step_done"
        ]
        once += sorted(done) == sorted(STEPS)
        twice += len(done) > len(set(done))
        raw: Any = await client.redis.hgetall(keys.run(NS, ref.split("/")[1]))
        for step in STEPS:
            for field in (wire.StepField.DELIVERIES, wire.StepField.INTERRUPTED):
                deliveries += int(raw.get(wire.step_field(step, field)) or 0)
    again = [await _submit(client, i) for i in range(len(refs))]
    async with httpx.AsyncClient() as http:
        counters = (await http.get(f"{tools.removesuffix('/tools')}/stats")).json()["tools"]
    calls = sum(c["requests"] for c in counters.values())
    dead = await client.redis.xrange(keys.dead_letter(NS))
    return {
        "runs": len(refs),
        "succeeded": statuses.count(wire.RunStatus.SUCCEEDED),
        "stuck": sum(s not in (wire.RunStatus.SUCCEEDED, wire.RunStatus.FAILED) for s in statuses),
        "steps exactly once": once,
        "double completions": twice,
        "resubmissions, same run": sum(a == b for a, b in zip(again, refs, strict=True)),
        "tool calls": calls,
        "deliveries": deliveries,
        "dead letters": len(dead),
        "dead-letter reasons": sorted({str(f.get("reason", ""))[:60] for _, f in dead}),
    }


def _failures(a: dict[str, Any]) -> list[str]:
    n = a["runs"]
    checks = {
        "a run did not succeed": a["succeeded"] == n,
        "a run is stuck": a["stuck"] == 0,
        "a step did not complete exactly once": a["steps exactly once"] == n,
        "a step completed twice": a["double completions"] == 0,
        "a resubmission made a new run": a["resubmissions, same run"] == n,
        "more tool calls than deliveries": a["tool calls"] <= a["deliveries"],
        "dead letters other than the poison": a["dead letters"] == POISON,
    }
    return [why for why, ok in checks.items() if not ok]


@contextlib.contextmanager
def _services(work: pathlib.Path) -> Iterator[tuple[Redis, str, pathlib.Path]]:
    """redis-server, the simulator and the pool manifest; (Redis, tools URL, manifest)."""
    with contextlib.ExitStack() as st:
        srv = Redis(work)
        srv.start()
        st.callback(lambda: srv.proc and srv.proc.poll() is None and srv.kill())
        port = _local.free_port()
        (work / "sim.json").write_text(json.dumps({"seed": SEED, "tool_delay_seconds": 0.1}))
        argv = commands.simulator_argv(port, work / "sim.json")
        sim = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        st.callback(commands.stop, sim)
        base = f"http://127.0.0.1:{port}"
        _local.wait_for(lambda: httpx.get(f"{base}/healthz").status_code == 200, "simulator")
        pool = _local.pool_manifest(NS, POOL, f"{base}/v1", concurrency=CONCURRENCY)
        pool["spec"]["queue"] = {"visibilityTimeoutSeconds": VISIBILITY_S}
        manifest = work / "pool.json"
        manifest.write_text(json.dumps(pool))
        yield srv, f"{base}/tools", manifest


async def _run(size: str, srv: Redis, tools: str, fleet: Fleet) -> tuple[dict[str, Any], Watch]:
    client = Client(srv.url)
    try:
        await client.publish(NS, WF, _spec(tools))
        stream = keys.pool_stream(NS, POOL)  # as the first worker would create it
        await client.redis.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
        for _ in range(WORKERS):
            fleet.spawn()
        watch = Watch()
        refs = await _chaos(client, fleet, srv, size, watch)
        statuses = await _settle(client, fleet, refs, watch)
        return await _audit(client, refs, statuses, tools), watch
    finally:
        await client.aclose()


def main(size: str) -> int:
    with tempfile.TemporaryDirectory(prefix="trimtab-chaos-") as tmp:
        work = pathlib.Path(tmp)
        with _services(work) as (srv, tools, manifest):
            fleet = Fleet(manifest, srv.url, work)
            t0 = time.monotonic()
            try:
                audit, watch = asyncio.run(_run(size, srv, tools, fleet))
            finally:
                fleet.close()
            took = time.monotonic() - t0
    _report(size, audit, fleet, watch, took)
    failed = _failures(audit)
    for why in failed:
        print(f"FAILED: {why}")
    return 1 if failed else 0


def _report(size: str, audit: dict[str, Any], fleet: Fleet, watch: Watch, took: float) -> None:
    print(
        f"chaos ({size}): {audit['runs']} runs of a 5-step fan-out/join DAG, {WORKERS} "
        f"workers x {CONCURRENCY}, visibility {VISIBILITY_S} s; {fleet.kills} SIGKILLs, "
        f"{fleet.stops} SIGSTOPs, 1 Redis SIGKILL (AOF always), {POISON} poison messages; "
        f"{took:.0f} s"
    )
    for key, value in audit.items():
        print(f"  {key:28} {value}")
    goal = VISIBILITY_S + 5
    print(f"  {'redelivery delay (s)':28} {'p50':>8} {'p99':>8} {'max':>8} {'goal p99':>9}  n")
    for label, sigs in (("after SIGKILL", {"SIGKILL"}), ("after SIGSTOP", {"SIGSTOP"}),
                        ("all", {"SIGKILL", "SIGSTOP"})):  # fmt: skip
        d = [s for sig, _, s in watch.delays if sig in sigs] or [0.0]
        p50, p99 = _local.percentile(d, 50), _local.percentile(d, 99)
        print(f"  {label:>28} {p50:8.2f} {p99:8.2f} {max(d):8.2f} {goal:9.2f}  {len(d)}")
    print(f"  {'unseen (finished elsewhere)':28} {len(watch.waiting)}")
    print(f"  {'signals held back (s)':28} {fleet.waited_s:.1f} (fewer than two ready)")
    first = min((at for _, at, _ in watch.delays), default=0.0)
    slowest = sorted(watch.delays, key=lambda x: -x[2])[:3]
    shown = ", ".join(
        f"{s:.1f} s ({sig} at +{(at - first) / 1000:.0f} s)" for sig, at, s in slowest
    )
    print(f"  {'slowest':28} {shown}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="the CI size, about a minute")
    sys.exit(main("small" if parser.parse_args().small else "full"))
