"""Options and helpers shared by the runtime commands."""

from __future__ import annotations

import argparse
import json
import pathlib
from typing import Any

from trimtab.sdk import client as sdk_client


def add_redis_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-url",
        default=sdk_client.DEFAULT_REDIS_URL,
        help="Redis URL (default: $TRIMTAB_REDIS_URL or redis://127.0.0.1:6379/0)",
    )


def parse_inputs(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs (a value that parses as JSON is taken as JSON) and `@file.json`."""
    inputs: dict[str, Any] = {}
    for pair in pairs:
        if pair.startswith("@"):
            loaded = json.loads(pathlib.Path(pair[1:]).read_text())
            if not isinstance(loaded, dict):
                raise ValueError(f"{pair[1:]} must hold a JSON object")
            inputs.update(loaded)
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--input takes key=value or @file.json, got {pair!r}")
        try:
            inputs[key] = json.loads(value)
        except json.JSONDecodeError:
            inputs[key] = value
    return inputs
