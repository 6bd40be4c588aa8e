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
        help="Redis URL, or the API server's http(s):// URL with the token in $TRIMTAB_TOKEN "
        "(default: $TRIMTAB_REDIS_URL or redis://127.0.0.1:6379/0)",
    )


def parse_inputs(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs (a value that parses as JSON is taken as JSON) and `@file.json`."""
    inputs: dict[str, Any] = {}
    for pair in pairs:
        if pair.startswith("@"):
            loaded = _json_file(pathlib.Path(pair[1:]))
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


def _json_file(path: pathlib.Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"--input @{path}: cannot read it: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--input @{path}: not JSON: {exc.msg} at line {exc.lineno}") from None
