"""`trimtab worker run`, `trimtab workflow publish`, `trimtab run`, `trimtab runs get`:
the runtime without Kubernetes (or beside it)."""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import sys
import time
from typing import Any

import pydantic
import uvloop
import yaml

from trimtab.api.v1alpha1 import manifests
from trimtab.cli import common, runs_cmd
from trimtab.queue import levels, runs, transcripts, wire
from trimtab.sdk import client as sdk_client
from trimtab.sdk import sync as sdk_sync
from trimtab.worker import main as worker_main
from trimtab.worker import settings


def register(groups: Any) -> None:
    worker = groups.add_parser("worker", help="run a pool's worker process")
    wsub = worker.add_subparsers(dest="action", metavar="ACTION", required=True)
    run_w = wsub.add_parser("run", help="serve one AgentPool's queue until SIGTERM")
    run_w.add_argument("--pool", help="NAMESPACE/NAME of the AgentPool")
    run_w.add_argument("-f", "--file", type=pathlib.Path, help="AgentPool manifest to serve")
    run_w.add_argument("--metrics-port", type=int, default=None, help="Prometheus port")
    common.add_redis_url(run_w)
    run_w.set_defaults(func=_worker_run)

    wf = groups.add_parser("workflow", help="publish workflows to Redis")
    wfsub = wf.add_subparsers(dest="action", metavar="ACTION", required=True)
    pub = wfsub.add_parser("publish", help="compile an AgentWorkflow manifest and publish it")
    pub.add_argument("-f", "--file", type=pathlib.Path, required=True)
    pub.add_argument("-n", "--namespace", help="namespace (default: the manifest's, or default)")
    common.add_redis_url(pub)
    pub.set_defaults(func=_publish)

    run = groups.add_parser("run", help="submit a run of NAMESPACE/WORKFLOW")
    run.add_argument("workflow", help="NAMESPACE/WORKFLOW")
    run.add_argument("--input", action="append", default=[], metavar="KEY=VALUE|@FILE.json")
    run.add_argument("--idempotency-key")
    run.add_argument(
        "--priority",
        choices=list(levels.FROM_API),
        help="the run's priority (default: the workflow's spec.priority)",
    )
    run.add_argument("--session", help="the conversation the run continues (memory.session)")
    run.add_argument("--wait", action="store_true", help="wait and print the result")
    run.add_argument("--timeout", type=float, default=120.0)
    common.add_redis_url(run)
    run.set_defaults(func=_run)

    runs_p = groups.add_parser("runs", help="inspect runs")
    rsub = runs_p.add_subparsers(dest="action", metavar="ACTION", required=True)
    get = rsub.add_parser("get", help="per-step state, timings, tokens and cost of a run")
    get.add_argument("run", help="NAMESPACE/RUN_ID")
    get.add_argument("-o", "--output", choices=["table", "json"], default="table")
    common.add_redis_url(get)
    get.set_defaults(func=_runs_get)
    runs_cmd.register(rsub)


def _worker_run(args: argparse.Namespace) -> int:
    cfg = settings.resolve(
        pool_ref=args.pool,
        manifest=args.file,
        redis_url=args.redis_url,
        metrics_port=args.metrics_port,
    )
    # uvloop: a worker spends most of its CPU in the event loop's socket work (Redis and
    # the endpoints); uvloop halves that (hack/bench/step_overhead.py).
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(worker_main.serve(cfg))
    return 0


def _document(path: pathlib.Path) -> Any:
    """The one YAML document of `path`; ValueError, in one line, for anything else."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ValueError(f"{path}{at}: {problem}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path} holds no manifest (an AgentWorkflow document)")
    return doc


def _publish(args: argparse.Namespace) -> int:
    try:
        parsed = manifests.parse(_document(args.file))
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the document"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        print(f"trimtab: {args.file} is invalid: {where}: {first['msg']}{more}", file=sys.stderr)
        return 1
    if not isinstance(parsed, manifests.AgentWorkflow):
        print(f"trimtab: {args.file} holds a {parsed.kind}, not an AgentWorkflow", file=sys.stderr)
        return 1
    namespace = args.namespace or parsed.metadata.namespace or "default"

    async def go() -> int:
        client = sdk_client.Client(args.redis_url)
        try:
            return await client.publish(namespace, parsed.metadata.name, parsed.spec)
        finally:
            await client.aclose()

    gen = asyncio.run(go())
    print(f"published {namespace}/{parsed.metadata.name} generation {gen}")
    return 0


def _run(args: argparse.Namespace) -> int:
    namespace, workflow = sdk_client.split_ref(args.workflow, what="a workflow")
    inputs = common.parse_inputs(args.input)
    client = sdk_sync.SyncClient(args.redis_url)
    run = client.submit(
        namespace, workflow, inputs, idempotency_key=args.idempotency_key,
        priority=args.priority, session=args.session,
    )  # fmt: skip
    if not args.wait:
        print(run)
        return 0
    result = client.result(run, timeout=args.timeout)
    print(
        json.dumps(
            {
                "run": result.run,
                "status": result.status,
                "outputs": result.outputs,
                "tokens": result.tokens,
                "cost": result.cost,
                "seconds": result.seconds,
                "errors": result.errors,
            },
            indent=2,
        )
    )
    return 0 if result.status is wire.RunStatus.SUCCEEDED else 2


def _runs_get(args: argparse.Namespace) -> int:
    state = sdk_sync.SyncClient(args.redis_url).get(args.run)
    if args.output == "json":
        print(
            json.dumps(
                {
                    "status": state.status,
                    "priority": state.priority,
                    "tokens": state.tokens,
                    "cost": state.cost,
                    "steps": {n: _step_json(s) for n, s in state.steps.items()},
                },
                indent=2,
                default=str,
            )
        )
        return 0
    now_ms = time.time() * 1000
    print(
        f"run {args.run}: {state.status}, {state.priority} priority, {state.tokens} tokens, "
        f"cost {state.cost:.6f}"
    )
    if state.error:
        print(f"  {state.error}")
    print(
        f"{'STEP':<24}{'STATE':<10}{'ATT':>4}{'POOL':>20}{'WAIT ms':>9}{'RUN ms':>9}{'TOKENS':>8}"
    )
    for name, s in state.steps.items():
        ran = (s.ended_ms - s.started_ms) if s.ended_ms and s.started_ms else None
        print(
            f"{name:<24}{s.state:<10}{s.attempt:>4}{(s.pool or '-'):>20}"
            f"{_ms(_waited_ms(s, now_ms)):>9}{_ms(ran):>9}{s.tokens:>8}"
        )
    for name, s in state.steps.items():
        if s.compensation is not None:
            why = f": {s.compensation_error}" if s.compensation_error else ""
            print(f"  compensation of {name}: {s.compensation}{why}")
    for name, s in state.steps.items():
        if s.transcript is not None:
            for line in transcript_lines(name, transcripts.Transcript.from_json(s.transcript)):
                print(line)
    for line in unserved(state, now_ms):
        print(line)
    return 0


def _step_json(s: runs.StepView) -> dict[str, Any]:
    out = vars(s).copy()
    if s.transcript is not None:
        out["transcript"] = json.loads(s.transcript)
    return out


SHOWN_CHARS = 100


def transcript_lines(step: str, t: transcripts.Transcript) -> list[str]:
    """An agent step's turns, a line each for a reply's calls, their results and its
    answer, each cut to SHOWN_CHARS."""
    lines = [f"  agent {step}: {t.turns} turn(s), {t.invalid_calls} invalid tool call(s)"]
    turn = 0
    for message in t.messages:
        role = message.get("role")
        if role == "assistant":
            turn += 1
            calls = message.get("tool_calls") or []
            said = (
                ", ".join(f"{c['function']['name']}({c['function']['arguments']})" for c in calls)
                if calls
                else f"answered {message.get('content') or ''}"
            )
            lines.append(f"    turn {turn}: " + _cut("called " + said if calls else said))
        elif role == "tool":
            lines.append("      -> " + _cut(str(message.get("content") or "")))
    return lines


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


# A step queued this long with no worker taking it is called out under the table.
UNSERVED_AFTER_S = 30.0


def _waited_ms(s: runs.StepView, now_ms: float) -> float | None:
    """Queue wait: until it started, or so far for a step still queued."""
    if s.queued_ms and s.started_ms and s.started_ms >= s.queued_ms:
        return s.started_ms - s.queued_ms
    if s.queued_ms and s.state is wire.StepState.QUEUED:
        return now_ms - s.queued_ms
    return None


def unserved(state: runs.RunState, now_ms: float) -> list[str]:
    """A line for each step queued longer than UNSERVED_AFTER_S that no worker took."""
    out = []
    for name, s in state.steps.items():
        waited = _waited_ms(s, now_ms) if s.state is wire.StepState.QUEUED else None
        if waited is not None and waited / 1000 > UNSERVED_AFTER_S:
            out.append(
                f"step {name} has waited {waited / 1000:.0f} s on pool {s.pool}, and no worker "
                "has taken it: is the pool scaled to zero, at its maximum, or without "
                "running workers? (kubectl get agentpool)"
            )
    return out


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
