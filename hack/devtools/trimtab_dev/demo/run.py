"""The demo from start to end: bring the stack up, drive the bursty load while showing
the system live, wait for the runs to finish and the pools to scale back down, then
print the summary and write the report. Everything is stopped on the way out."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import pathlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.live import Live

from trimtab.api.v1alpha1 import API_VERSION, agentpool
from trimtab.history import store
from trimtab.queue import wire, workflows
from trimtab.reconcile.agentpool import floors
from trimtab.sdk import Client
from trimtab.sdk import client as sdk_client
from trimtab_dev.demo import load, observe, report, screenshots, stack, trace_chart, ui
from trimtab_dev.demo import timeline as tl

ROOT = pathlib.Path(__file__).resolve().parents[4]
ENDED = {wire.RunStatus.SUCCEEDED, wire.RunStatus.FAILED, wire.RunStatus.REVIEW}


@dataclasses.dataclass(frozen=True)
class Options:
    duration: float = 120.0
    shape: load.Shape = dataclasses.field(default_factory=load.Shape)
    seed: int = 7
    report_dir: pathlib.Path = pathlib.Path("demo-report")
    live: bool = True
    keep: bool = False
    namespace: str = "trimtab-demo"
    drain_seconds: float = 120.0
    cooldown_seconds: float = 120.0
    scale_down_seconds: int = 15
    idle_seconds_to_zero: int = 20
    model_server: str = "simulator"  # or "llama-cpp": what the sample pools call


@dataclasses.dataclass
class Progress:
    phase: str = "starting"
    started: float = 0.0
    total: float = 0.0
    submitted: int = 0


class Show:
    """The live view, or log lines; `say` for messages either way."""

    def __init__(self, options: Options) -> None:
        self.console, self.options = Console(), options
        self.started = time.monotonic()
        self.live: Live | None = None
        self.last_line = 0.0

    def say(self, message: str) -> None:
        self.console.print(message)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        if not self.options.live:
            yield
            return
        with Live(console=self.console, refresh_per_second=2, transient=False) as live:
            self.live = live
            yield
        self.live = None

    def update(self, pools: list[tl.PoolSample], runs: tl.RunsSample, p: Progress) -> None:
        done = time.monotonic() - p.started
        if self.live is not None:
            self.live.update(ui.view(pools, runs, phase=p.phase, done=done, total=p.total))
        elif time.monotonic() - self.last_line >= 5:
            self.last_line = time.monotonic()
            self.say(ui.line(pools, runs, phase=p.phase, done=done))


async def _published(client: Client, namespace: str) -> None:
    deadline = time.monotonic() + 90
    for name in observe.WORKFLOWS:
        while True:
            try:
                await workflows.current_generation(client.redis, namespace, name)
                break
            except workflows.WorkflowNotFoundError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the operator never published {name}") from None
                await asyncio.sleep(0.5)


async def _submit_all(client: Client, o: Options, p: Progress, refs: list[str]) -> None:
    arrivals = load.schedule(o.shape, o.duration, o.seed)
    t0 = time.monotonic()
    pending: set[asyncio.Task[str]] = set()
    for arrival in arrivals:
        await asyncio.sleep(max(0.0, t0 + arrival.at - time.monotonic()))
        task = asyncio.create_task(
            client.submit(o.namespace, arrival.workflow, arrival.inputs, session=arrival.session)
        )
        task.add_done_callback(lambda t: refs.append(t.result()) if not t.exception() else None)
        pending.add(task)
        p.submitted += 1
    await asyncio.gather(*pending)
    await asyncio.sleep(max(0.0, t0 + o.duration - time.monotonic()))


async def _sample(
    obs: observe.Observer, timeline: tl.Timeline, p: Progress, t0: float, show: Show
) -> tuple[list[tl.PoolSample], tl.RunsSample]:
    t = time.monotonic() - t0
    pools = await obs.pools(t)
    runs = await obs.runs(t, p.submitted)
    timeline.pools.extend(pools)
    timeline.runs.append(runs)
    show.update(pools, runs, p)
    return pools, runs


async def _watch(
    obs: observe.Observer,
    timeline: tl.Timeline,
    p: Progress,
    t0: float,
    show: Show,
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        await _sample(obs, timeline, p, t0, show)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)


async def _until(check: Callable[[], bool], seconds: float) -> None:
    """Poll external state (runs, replicas) once a second for at most `seconds`."""
    for _ in range(max(1, int(seconds))):
        if check():
            return
        await asyncio.sleep(1.0)


def _minimums(st: stack.Stack) -> dict[str, int]:
    """Each pool's floor now: its minReplicas, or an active schedule's (the support
    pools hold replicas in office hours, so a demo run then ends above minReplicas)."""
    pools = st.store.list(API_VERSION, "AgentPool", namespace=st.namespace)
    now = time.time()
    out = {}
    for pool in pools:
        scaling = agentpool.AgentPoolSpec.model_validate(pool["spec"]).scaling
        held, _ = floors.scheduled(scaling.schedules, now=now)
        out[pool["metadata"]["name"]] = max(scaling.min_replicas, held.replicas if held else 0)
    return out


async def _finals(client: Client, refs: list[str]) -> dict[str, Any]:
    states = {}
    for ref in refs:
        with contextlib.suppress(sdk_client.RunNotFoundError):
            states[ref] = await client.get(ref)
    return states


async def _drain(client: Client, refs: list[str], seconds: float) -> int:
    """Wait at most `seconds` for every run to end, polling only those still going;
    returns how many ended."""
    pending = set(refs)
    for _ in range(max(1, int(seconds / 2))):
        states = await _finals(client, sorted(pending))
        pending -= {ref for ref, state in states.items() if state.status in ENDED}
        if not pending:
            break
        await asyncio.sleep(2.0)
    return len(refs) - len(pending)


def _at_minimum(timeline: tl.Timeline, minimum: dict[str, int]) -> bool:
    """Every pool's latest sample asks for no more than its minReplicas."""
    last = {s.pool: s.desired for s in timeline.pools[-len(minimum) :]}
    return all(last.get(pool, 0) <= low for pool, low in minimum.items())


async def drive(st: stack.Stack, o: Options, show: Show) -> tuple[tl.Timeline, dict[str, Any]]:
    client = Client(st.redis_url)
    try:
        await _published(client, o.namespace)
        show.say(f"load starting, {time.monotonic() - show.started:.1f} s after launch")
        timeline, p, refs = tl.Timeline(), Progress(), list[str]()
        obs = observe.Observer(st.store, client, o.namespace)
        stop, t0, wall = asyncio.Event(), time.monotonic(), time.time()
        p.phase, p.started, p.total = "load", t0, o.duration
        watcher = asyncio.create_task(_watch(obs, timeline, p, t0, show, stop))
        with show.running():
            await _submit_all(client, o, p, refs)
            timeline.load_seconds = time.monotonic() - t0
            p.phase, p.started, p.total = "draining", time.monotonic(), o.drain_seconds
            ended = await _drain(client, refs, o.drain_seconds)
            show.say(f"load done: {len(refs)} runs; {ended} ended after the drain")
            p.phase, p.started, p.total = "scaling down", time.monotonic(), o.cooldown_seconds
            minimum = _minimums(st)
            await _until(lambda: _at_minimum(timeline, minimum), o.cooldown_seconds)
            settled = _at_minimum(timeline, minimum)
            show.say("pools back at their minimum" if settled else "pools still scaling down")
            stop.set()
            await watcher
        states = await _finals(client, refs)
        timeline.recorded_arrivals, timeline.pool_specs = await obs.recorded(wall)
        return timeline, _results(timeline, refs, states, minimum)
    finally:
        await client.aclose()


def _results(
    timeline: tl.Timeline, refs: list[str], states: dict[str, Any], minimum: dict[str, int]
) -> dict[str, Any]:
    by_status: dict[str, int] = {}
    for s in states.values():
        by_status[s.status] = by_status.get(s.status, 0) + 1
        if s.status is wire.RunStatus.SUCCEEDED and s.ended_ms:
            seconds = (s.ended_ms - s.created_ms) / 1000
            timeline.run_seconds.append(seconds)
            if seconds > timeline.slowest_seconds:
                timeline.slowest_run = f"{s.namespace}/{s.run_id}"
                timeline.slowest_seconds = seconds
        for step in s.steps.values():
            if step.pool:
                timeline.model_cost_by_pool[step.pool] = (
                    timeline.model_cost_by_pool.get(step.pool, 0.0) + step.cost
                )
    peak: dict[str, int] = {}
    final: dict[str, int] = {}
    real: dict[str, int] = {}
    for sample in timeline.pools:
        peak[sample.pool] = max(peak.get(sample.pool, 0), sample.desired)
        final[sample.pool] = sample.desired
        real[sample.pool] = max(real.get(sample.pool, 0), sample.real_pods)
    return {
        "submitted": len(refs),
        "succeeded": by_status.get("succeeded", 0),
        "review": by_status.get("review", 0),
        "dead_lettered": by_status.get("failed", 0),
        "unfinished": sum(v for k, v in by_status.items() if k not in ENDED),
        "missing": len(refs) - len(states),
        "peak_replicas": peak,
        "final_replicas": final,
        "min_replicas": minimum,
        "peak_real_node_pods": real,
    }


def _slowest_trace(
    st: stack.Stack, timeline: tl.Timeline, out_dir: pathlib.Path, show: Show
) -> str:
    """The slowest run's trace, saved beside the report; its Jaeger URL ("" if none)."""
    if st.jaeger is None or not timeline.slowest_run:
        return ""
    found = trace_chart.fetch(st.jaeger, timeline.slowest_run)
    if found is None:
        show.say(f"the slowest run's trace ({timeline.slowest_run}) did not reach Jaeger")
        return ""
    trace_chart.save(found, out_dir)
    url = st.jaeger.trace_url(found["traceID"])
    show.say(
        f"slowest run {timeline.slowest_run} ({timeline.slowest_seconds:.2f} s), "
        f"{len(found['spans'])} spans: {url} (saved: {out_dir / 'slowest-run-trace.png'})"
    )
    return url


async def _archived(st: stack.Stack, show: Show) -> dict[str, Any]:
    """What the history database holds of the demo's runs: their spend by workflow, as
    `trimtab cost report` prints it, once the operator's last passes are in."""
    await asyncio.sleep(3)
    now = datetime.datetime.now(datetime.UTC)
    try:
        conn = await store.connect(st.history_url)
    except store.HistoryUnavailableError as exc:
        show.say(f"the run history could not be read: {exc}")
        return {}
    try:
        rows = await store.cost_report(
            conn, store.CostBy.WORKFLOW, since=now - datetime.timedelta(days=1), until=now
        )
    finally:
        await conn.close()
    for r in rows:
        show.say(f"  archived {r.key}: {r.runs} runs, {r.tokens} tokens, ${r.cost:.4f}")
    return {r.key: {"runs": r.runs, "tokens": r.tokens, "cost": r.cost} for r in rows}


def main(o: Options) -> dict[str, Any]:
    show = Show(o)
    work = pathlib.Path(tempfile.mkdtemp(prefix="trimtab-demo-"))
    tuning = {
        "stabilization": {"scaleDownSeconds": o.scale_down_seconds},
        "idleSecondsToZero": o.idle_seconds_to_zero,
    }
    try:
        with stack.running(
            ROOT, o.namespace, work, seed=o.seed, tuning=tuning, keep=o.keep, say=show.say,
            model_server=o.model_server,
        ) as st:  # fmt: skip
            timeline, results = asyncio.run(drive(st, o, show))
            traced = _slowest_trace(st, timeline, o.report_dir, show)
            results["history"] = asyncio.run(_archived(st, show))
            shots = screenshots.take(st.api_url, o.namespace, o.report_dir / "console")
            if shots:
                show.say(f"console screenshots: {o.report_dir / 'console'}")
            if o.keep:
                show.say(
                    f"kept running: export KUBECONFIG={st.kubeconfig}; then kubectl get "
                    f"agentpools -n {o.namespace}. Logs: {work}"
                )
    finally:
        if not o.keep:
            shutil.rmtree(work, ignore_errors=True)
    settings = {
        "duration (s)": o.duration,
        "average rate (runs/s)": o.shape.rate,
        "peak-to-average": o.shape.peak_ratio,
        "seed": o.seed,
        "model server": o.model_server,
    }
    files = report.write_report(timeline, o.report_dir, settings=settings, trace=traced)
    results["report"] = [str(f) for f in files]
    (o.report_dir / "summary.json").write_text(json.dumps(results, indent=2))
    for label, value in report.summary_rows(timeline):
        show.say(f"  {label:<40} {value}")
    show.say(f"report: {o.report_dir / 'report.md'}")
    return results
