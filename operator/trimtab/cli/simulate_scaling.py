"""`trimtab simulate scaling`: replay an arrival trace through a pool spec's autoscaler
and its peers before applying it.

    trimtab simulate scaling -f pool.yaml --trace bursty:mean=5,peak=10
    trimtab simulate scaling -f pool.yaml --trace arrivals.csv --startup 30 --chart out.png
    trimtab simulate scaling -f pool.yaml --from-pool shop/support --since 1h

The pool's autoscaler is the operator's own policy (trimtab.sim.fleet.peers.Trimtab);
the peers are KEDA (defaults, and tuned), an HPA on CPU, and the cheapest static fleet
that holds the SLO on the same trace.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import re
import sys
import time
from typing import Any

import pydantic
import yaml

from trimtab.api.v1alpha1 import manifests
from trimtab.cli import common
from trimtab.sdk import client as sdk_client
from trimtab.sim.fleet import compare, contenders, model, report, traces

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def register(sub: Any) -> None:
    scaling = sub.add_parser(
        "scaling",
        help="replay an arrival trace through a pool's autoscaler, KEDA, an HPA and a "
        "static fleet, and compare latency and cost",
    )
    scaling.add_argument(
        "-f", "--file", type=pathlib.Path, required=True, help="AgentPool YAML (- for stdin)"
    )
    source = scaling.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--trace",
        help="a CSV of arrival times (seconds) or a shape: "
        + ", ".join(sorted(traces.SHAPES))
        + " (e.g. bursty:mean=5,peak=10,period=900)",
    )
    source.add_argument("--from-pool", metavar="NS/NAME", help="a live pool's recorded arrivals")
    scaling.add_argument("--since", default="1h", help="with --from-pool: how far back (30m, 1h)")
    common.add_redis_url(scaling)
    _model_options(scaling)
    scaling.add_argument("--seed", type=int, default=1, help="seed for traces and service times")
    scaling.add_argument("--slo", type=float, default=10.0, help="end-to-end SLO, seconds")
    scaling.add_argument("--price-per-replica-hour", type=float, help="adds a cost column")
    scaling.add_argument("--chart", type=pathlib.Path, help="write a PNG of load and replicas")
    scaling.add_argument("--export-trace", type=pathlib.Path, help="write the trace as CSV")
    scaling.set_defaults(func=_scaling)


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--slots", type=int, help="steps per replica (default: concurrency)")
    parser.add_argument("--startup", type=float, default=15.0, help="replica start-up, s")
    parser.add_argument("--service-mean", type=float, default=2.0, help="mean step time, s")
    parser.add_argument("--service-cv", type=float, default=0.5, help="its variation")
    parser.add_argument("--saturation", type=float, default=0.0, help="slowdown when full")
    parser.add_argument("--warmup", type=float, default=0.0, help="seconds of history unscored")


def _scaling(args: argparse.Namespace) -> int:
    try:
        pool = _pool(args.file)
        trace = _trace(args)
        fleet = _fleet(args, pool.spec.worker.concurrency)
    except (OSError, ValueError, pydantic.ValidationError) as exc:
        print(f"trimtab: {_one_line(exc)}", file=sys.stderr)
        return 2
    line_up = [
        contenders.trimtab(f"Trimtab ({pool.metadata.name})", pool.spec),
        *contenders.peers_of(pool.spec, slots=fleet.slots),
    ]
    size, scores, outcomes = compare.compare(fleet, trace, line_up, slo=args.slo, seed=args.seed)
    print(report.describe(trace, fleet, size))
    print(report.table(scores, slo=args.slo, price_per_replica_hour=args.price_per_replica_hour))
    return _outputs(args, trace, outcomes)


def _outputs(args: argparse.Namespace, trace: traces.Trace, outcomes: Any) -> int:
    if args.export_trace:
        args.export_trace.write_text(traces.to_csv(trace))
        print(f"trace written to {args.export_trace}")
    if args.chart:
        try:
            report.chart(args.chart, trace, outcomes, title=trace.name)
        except report.ChartUnavailableError as exc:
            print(f"trimtab: {exc}", file=sys.stderr)
            return 2
        print(f"chart written to {args.chart}")
    return 0


def _pool(path: pathlib.Path) -> manifests.AgentPool:
    text = sys.stdin.read() if str(path) == "-" else path.read_text()
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise ValueError(f"{path} holds no manifest")
    parsed = manifests.parse(doc)
    if not isinstance(parsed, manifests.AgentPool):
        raise ValueError(f"{path} holds kind {parsed.kind}, not AgentPool")
    return parsed


def _fleet(args: argparse.Namespace, concurrency: int) -> model.PoolModel:
    for name in ("startup", "service_mean"):
        if not getattr(args, name) > 0:
            raise ValueError(f"--{name.replace('_', '-')} must be above 0")
    if args.service_cv < 0 or args.saturation < 0 or args.warmup < 0:
        raise ValueError("--service-cv, --saturation and --warmup must not be negative")
    return model.PoolModel(
        slots=args.slots or concurrency,
        startup_seconds=args.startup,
        service_mean=args.service_mean,
        service_cv=args.service_cv,
        saturation=args.saturation,
        warmup_seconds=args.warmup,
    )


def _trace(args: argparse.Namespace) -> traces.Trace:
    if args.from_pool:
        return _recorded(args.from_pool, since=_seconds(args.since), redis_url=args.redis_url)
    path = pathlib.Path(args.trace)
    if path.suffix == ".csv" or path.exists():
        return traces.from_csv(path.read_text(), name=str(path))
    return traces.named(args.trace, args.seed)


def _recorded(ref: str, *, since: float, redis_url: str) -> traces.Trace:
    namespace, sep, pool = ref.partition("/")
    if not sep or not namespace or not pool:
        raise ValueError(f"--from-pool takes NAMESPACE/NAME, got {ref!r}")
    until = time.time()

    async def read() -> dict[int, int]:
        client = sdk_client.Client(redis_url)
        try:
            return await client.recorded_arrivals(namespace, pool, since=until - since, until=until)
        finally:
            await client.aclose()

    counts = asyncio.run(read())
    return traces.from_counts(counts, name=f"{ref}, last {since:g} s")


def _seconds(text: str) -> float:
    found = _DURATION.match(text.strip())
    if not found:
        raise ValueError(f"--since takes a duration such as 30m, 1h or 2d, got {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, pydantic.ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"invalid AgentPool: {where}: {first['msg']} ({exc.error_count()} problem(s))"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
