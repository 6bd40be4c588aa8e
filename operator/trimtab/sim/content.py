"""What a simulated model says: filler text, JSON that fits a schema, JSON that does not.

Pure functions of their inputs and a seeded `random.Random`. Structured output covers
the JSON Schema subset workflow steps use (types, properties, required, enum, const,
bounds, lengths, items, anyOf/oneOf); the `confidence` property gets a tunable
distribution so tests and the demo can drive low-confidence branches on purpose.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import random
import time
from typing import Any

from jsonschema import validators

from trimtab.sim.behaviour import Fault, estimate_tokens, seeded_rng

_VOCABULARY = (
    "the customer reports that order account billing invoice refund shipment delayed "
    "payment failed after update login password reset support ticket priority issue "
    "resolved escalated agent reviewed policy allows a full partial credit within "
    "thirty days please confirm we apologise for inconvenience next steps include "
    "checking status tracking number warehouse replacement device settings"
)
WORDS = tuple(_VOCABULARY.split())
UNBOUNDED_SPAN = 100.0
CONFIDENCE_SPREAD = 0.1


def text_completion(n_tokens: int, rng: random.Random) -> str:
    """Plausible prose of about n_tokens tokens (by `estimate_tokens`)."""
    sentences: list[str] = []
    while not sentences or estimate_tokens(" ".join(sentences)) < n_tokens:
        words = rng.choices(WORDS, k=rng.randint(6, 14))
        sentences.append(" ".join(words).capitalize() + ".")
    return " ".join(sentences)


def json_for_schema(
    schema: dict[str, Any], rng: random.Random, *, confidence_mean: float = 0.85
) -> Any:
    """A value that validates against `schema`; optional properties are included too."""
    return _generate(schema, rng, confidence_mean, "")


def _generate(schema: dict[str, Any], rng: random.Random, mean: float, name: str) -> Any:
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return _generate(schema[key][0], rng, mean, name)
    kind = _type_of(schema)
    if kind == "number" and name == "confidence":
        return _confidence(schema, rng, mean)
    return _GENERATORS[kind](schema, rng, mean)


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0] if kind else None
    if isinstance(kind, str) and kind in _GENERATORS:
        return kind
    if "properties" in schema or "required" in schema:
        return "object"
    return "array" if "items" in schema else "string"


def _object(schema: dict[str, Any], rng: random.Random, mean: float) -> dict[str, Any]:
    properties: dict[str, Any] = schema.get("properties", {})
    value = {key: _generate(sub, rng, mean, key) for key, sub in properties.items()}
    for key in schema.get("required", []):
        value.setdefault(key, text_completion(3, rng))
    return value


def _array(schema: dict[str, Any], rng: random.Random, mean: float) -> list[Any]:
    low = int(schema.get("minItems", 0))
    high = int(schema.get("maxItems", max(low, 3)))
    items = schema.get("items")
    item_schema: dict[str, Any] = items if isinstance(items, dict) else {}
    return [_generate(item_schema, rng, mean, "") for _ in range(rng.randint(low, high))]


def _string(schema: dict[str, Any], rng: random.Random, mean: float) -> str:
    low = int(schema.get("minLength", 0))
    high = int(schema.get("maxLength", max(low, 40)))
    length = rng.randint(low, high)
    text = text_completion(max(1, length // 4 + 1), rng)
    while len(text) < length:
        text += " " + text
    return text[:length]


def _bounds(schema: dict[str, Any]) -> tuple[float, float]:
    """The range to draw from; an open side extends a fixed span past the closed one."""
    low: Any = schema.get("minimum")
    high: Any = schema.get("maximum")
    if low is None and high is None:
        return 0.0, UNBOUNDED_SPAN
    low = float(high) - UNBOUNDED_SPAN if low is None else float(low)
    high = low + UNBOUNDED_SPAN if high is None else float(high)
    return low, high


def _number(schema: dict[str, Any], rng: random.Random, mean: float) -> float:
    low, high = _bounds(schema)
    return _clamp(round(rng.uniform(low, high), 2), low, high)


def _integer(schema: dict[str, Any], rng: random.Random, mean: float) -> int:
    low, high = _bounds(schema)
    return rng.randint(math.ceil(low), max(math.ceil(low), math.floor(high)))


def _confidence(schema: dict[str, Any], rng: random.Random, mean: float) -> float:
    low = float(schema.get("minimum", 0.0))
    high = float(schema.get("maximum", 1.0))
    if low > high:  # one-sided bounds outside 0..1: not a probability, draw it plainly
        return _number(schema, rng, mean)
    return _clamp(round(rng.gauss(mean, CONFIDENCE_SPREAD), 3), low, high)


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


_GENERATORS: dict[str, Any] = {
    "object": _object,
    "array": _array,
    "string": _string,
    "number": _number,
    "integer": _integer,
    "boolean": lambda schema, rng, mean: rng.random() < 0.5,
    "null": lambda schema, rng, mean: None,
}

# Candidates for a wrong type: at least one of these mismatches any single JSON type.
_WRONG_TYPES: tuple[Any, ...] = ("unexpected", 3.5, 7, True, None, [], {})


def violating_json(schema: dict[str, Any], rng: random.Random) -> Any:
    """JSON that fails `schema` the way models do: a required key missing or a wrong type.

    Raises ValueError for a schema every value satisfies (nothing can violate it).
    """
    validator = validators.validator_for(schema)(schema)
    valid = json_for_schema(schema, rng)
    for candidate in _violations(schema, valid):
        if not validator.is_valid(candidate):
            return candidate
    raise ValueError("the schema accepts every value, so no output can violate it")


def _violations(schema: dict[str, Any], valid: Any) -> list[Any]:
    candidates: list[Any] = []
    if isinstance(valid, dict):
        candidates += [_without(valid, key) for key in schema.get("required", []) if key in valid]
        candidates += [{**valid, key: wrong} for key in valid for wrong in _WRONG_TYPES]
    return candidates + list(_WRONG_TYPES)


def _without(value: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k != key}


def answer(
    rng: random.Random,
    *,
    n_tokens: int,
    schema: dict[str, Any] | None,
    json_requested: bool,
    fault: Fault | None,
    confidence_mean: float,
) -> str:
    """The assistant message content for a request's response format and content fault."""
    if schema is not None:
        violate = fault is Fault.SCHEMA_VIOLATION
        text = json.dumps(_structured(schema, rng, violate=violate, mean=confidence_mean))
    elif json_requested:
        text = json.dumps({"answer": text_completion(n_tokens, rng)})
    else:
        return text_completion(n_tokens, rng)
    return malformed_json(text) if fault is Fault.MALFORMED else text


def _structured(schema: dict[str, Any], rng: random.Random, *, violate: bool, mean: float) -> Any:
    if violate:
        # A schema nothing violates gets a valid answer rather than a pretend violation.
        with contextlib.suppress(ValueError):
            return violating_json(schema, rng)
    return json_for_schema(schema, rng, confidence_mean=mean)


def chat_completion(
    completion_id: str,
    model: str,
    *,
    text: str,
    usage: tuple[int, int],
    finish_reason: str,
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The OpenAI `chat.completion` object carrying one assistant message: `text`, or
    the `tool_calls` it asks for instead."""
    prompt_tokens, completion_tokens = usage
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message = {"role": "assistant", "content": None, "tool_calls": tool_calls}
        finish_reason = "tool_calls"
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def malformed_json(valid_json: str) -> str:
    """What a model emits when it breaks JSON mode: chatter and a truncated object."""
    return "Sure! Here is the JSON you asked for:\n" + valid_json[: len(valid_json) // 2]


def tool_result(name: str, body: Any) -> dict[str, Any]:
    """A small result for tool `name`, the same for the same request body."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    rng = seeded_rng(digest)
    if name == "history":
        return {"tickets": [_ticket(rng) for _ in range(rng.randint(1, 3))]}
    if name == "search":
        return {"documents": [_document(rng, rank) for rank in range(3)]}
    return {"echo": body}


def _ticket(rng: random.Random) -> dict[str, Any]:
    return {
        "id": f"T-{rng.randint(1000, 9999)}",
        "subject": text_completion(4, rng)[:40],
        "status": rng.choice(["resolved", "open", "escalated"]),
        "days_ago": rng.randint(1, 365),
    }


def _document(rng: random.Random, rank: int) -> dict[str, Any]:
    return {
        "id": f"doc-{rng.randint(100, 999)}",
        "title": text_completion(3, rng)[:48],
        "score": round(0.95 - 0.15 * rank - rng.random() * 0.05, 3),
    }


def tool_calls(
    tools: list[tuple[str, dict[str, Any]]], rng: random.Random, *, violate: bool, mean: float
) -> list[dict[str, Any]]:
    """A reply's tool calls: one (two, three times in ten, when there are several
    tools) of the offered (name, parameters), arguments drawn to fit the parameters
    (or to break them, for a schema-violation fault)."""
    count = 2 if len(tools) > 1 and rng.random() < 0.3 else 1
    calls = []
    for i in range(count):
        name, parameters = tools[rng.randrange(len(tools))]
        arguments = _structured(parameters, rng, violate=violate, mean=mean)
        calls.append(
            {
                "id": f"call_{rng.getrandbits(48):012x}_{i}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
        )
    return calls
