"""The `trimtab` command line: one entry point, a subcommand group per concern.

Each group lives in its own module and registers itself on the parser, so adding a
command never grows this file beyond the wiring. Groups outside the product (the local
cluster and the demo, in the development tools under hack/devtools) register through
the `trimtab.commands` entry point when they are installed.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import sys
from collections.abc import Sequence
from typing import Any

import trimtab
from trimtab.cli import (
    api_cmd,
    guardrails,
    history_cmd,
    operator_cmd,
    redis_cmd,
    runtime,
    sessions_cmd,
    simulate,
)

PLUGINS = "trimtab.commands"
# The development tools' commands, named where they are absent so the README's
# commands fail with what to do instead of argparse's "invalid choice".
DEV_COMMANDS = {
    "cluster": "a local Kubernetes for development",
    "demo": "the whole system locally under bursty load",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trimtab",
        description="Run AI-agent workflows on Kubernetes: operator, workers and tooling.",
    )
    parser.add_argument("--version", action="version", version=f"trimtab {trimtab.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    simulate.register(groups)
    runtime.register(groups)
    operator_cmd.register(groups)
    guardrails.register(groups)
    redis_cmd.register(groups)
    sessions_cmd.register(groups)
    api_cmd.register(groups)
    history_cmd.register(groups)
    for plugin in importlib.metadata.entry_points(group=PLUGINS):
        plugin.load()(groups)
    for name, what in DEV_COMMANDS.items():
        if name not in groups.choices:
            _missing(groups, name, what)
    return parser


def _missing(groups: Any, name: str, what: str) -> None:
    parser = groups.add_parser(name, help=f"{what} (development tools, not installed)")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    def explain(_: argparse.Namespace) -> int:
        raise LookupError(
            f"`trimtab {name}` comes with the development tools: from a checkout of "
            "Trimtab, `make install` (or pip install -e hack/devtools) adds it"
        )

    parser.set_defaults(func=explain)


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
    # TimeoutError: a run that did not finish (sdk.client.RunNotFinishedError says why).
    except (RuntimeError, ValueError, LookupError, TimeoutError) as exc:
        print(f"trimtab: error: {exc}", file=sys.stderr)
        return 1
