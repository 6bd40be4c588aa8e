"""`trimtab demo`: the whole system working on this machine, under bursty load."""

from __future__ import annotations

import argparse
import pathlib
import signal
from typing import Any, NoReturn


def register(groups: Any) -> None:
    demo = groups.add_parser(
        "demo",
        help="run the whole system locally under bursty load and write a report",
        description=(
            "Brings up the local control plane, Redis, the inference simulator, the "
            "operator and workers; drives a bursty load of the sample workflows; shows "
            "pools scaling live; ends with a summary and a report folder."
        ),
    )
    demo.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    demo.add_argument("--rate", type=float, default=4.0, help="average runs per second")
    demo.add_argument("--peak-ratio", type=float, default=10.0, help="burst peak over average")
    demo.add_argument("--period", type=float, default=40.0, help="seconds between bursts")
    demo.add_argument("--burst", type=float, default=3.0, help="seconds each burst lasts")
    demo.add_argument("--seed", type=int, default=7, help="the same seed gives the same load")
    demo.add_argument("--report-dir", type=pathlib.Path, default=pathlib.Path("demo-report"))
    demo.add_argument("--no-ui", action="store_true", help="log lines instead of the live view")
    demo.add_argument("--keep", action="store_true", help="leave everything running at the end")
    demo.add_argument("--namespace", default="trimtab-demo")
    demo.add_argument("--scale-down-seconds", type=int, default=15, help="pools' scale-down window")
    demo.add_argument("--idle-seconds-to-zero", type=int, default=20)
    demo.add_argument(
        "--model-server",
        choices=["simulator", "llama-cpp"],
        default="simulator",
        help="what the sample pools call: the seeded simulator (fast, faults on purpose) or "
        "llama.cpp's llama-server with a tiny generated model (built on first use, ~10 min)",
    )
    demo.set_defaults(func=_demo)


def _interrupt(signum: int, _frame: object) -> NoReturn:
    raise KeyboardInterrupt(f"signal {signum}")


def _demo(args: argparse.Namespace) -> int:
    from trimtab_dev.demo import load, run  # noqa: PLC0415 - matplotlib and rich load only here

    signal.signal(signal.SIGTERM, _interrupt)  # cleaned up like Ctrl-C
    shape = load.Shape(
        rate=args.rate, peak_ratio=args.peak_ratio, period=args.period, burst=args.burst
    )
    options = run.Options(
        duration=args.duration,
        shape=shape,
        seed=args.seed,
        report_dir=args.report_dir,
        live=not args.no_ui,
        keep=args.keep,
        namespace=args.namespace,
        scale_down_seconds=args.scale_down_seconds,
        idle_seconds_to_zero=args.idle_seconds_to_zero,
        model_server=args.model_server,
    )
    results = run.main(options)
    lost = results["unfinished"] + results["missing"]
    return 0 if lost == 0 else 2
