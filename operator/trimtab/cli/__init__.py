"""The `trimtab` command line: one entry point, a subcommand group per concern.

Each group lives in its own module and registers itself on the parser, so adding a
command never grows this file beyond the wiring.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import trimtab
from trimtab.cli import cluster, demo_cmd, guardrails, operator_cmd, runtime, simulate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trimtab",
        description="Run AI-agent workflows on Kubernetes: operator, workers and tooling.",
    )
    parser.add_argument("--version", action="version", version=f"trimtab {trimtab.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    cluster.register(groups)
    simulate.register(groups)
    runtime.register(groups)
    operator_cmd.register(groups)
    guardrails.register(groups)
    demo_cmd.register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # One line per HTTP request drowns the worker's own log at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, ValueError, LookupError) as exc:
        print(f"trimtab: error: {exc}", file=sys.stderr)
        return 1
