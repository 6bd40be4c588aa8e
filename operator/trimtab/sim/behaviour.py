"""How a simulated model behaves: latency under load, output length, which fault strikes.

Pure functions of a profile and a seeded `random.Random`, so the server stays thin and
the latency and fault models can be tested exactly, without timing anything.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import random
from typing import Any

from trimtab.sim.profiles import ModelProfile


class Fault(enum.StrEnum):
    """Injected failures; the values are what the `X-Sim-Fault` header names."""

    TOO_MANY_REQUESTS = "429"
    SERVER_ERROR = "500"
    TIMEOUT = "timeout"
    MALFORMED = "malformed"
    SCHEMA_VIOLATION = "schema_violation"


def seeded_rng(*parts: object) -> random.Random:
    """A random stream named by its parts; the same parts give the same stream in any run."""
    # Reproducible simulation is the point here; nothing secret is drawn from it.
    return random.Random(":".join(str(part) for part in parts))


def delay_seconds(profile: ModelProfile, *, output_tokens: int, in_flight: int) -> float:
    """Time to answer: first token plus decode, stretched once in-flight exceeds capacity."""
    unloaded = profile.ttft_seconds + profile.per_token_seconds * output_tokens
    return unloaded * max(1.0, in_flight / profile.capacity)


def _fault_rates(profile: ModelProfile) -> list[tuple[Fault, float]]:
    return [
        (Fault.TOO_MANY_REQUESTS, profile.rate_429),
        (Fault.SERVER_ERROR, profile.rate_500),
        (Fault.TIMEOUT, profile.rate_timeout),
        (Fault.MALFORMED, profile.rate_malformed),
        (Fault.SCHEMA_VIOLATION, profile.rate_schema_violation),
    ]


def choose_fault(profile: ModelProfile, rng: random.Random) -> Fault | None:
    """Draw at most one fault; always consumes exactly one number so streams stay aligned."""
    draw = rng.random()
    threshold = 0.0
    for fault, rate in _fault_rates(profile):
        threshold += rate
        if draw < threshold:
            return fault
    return None


def applicable_fault(
    fault: Fault | None, *, json_requested: bool, schema_given: bool
) -> Fault | None:
    """Drop content faults the request cannot show: malformed needs JSON, violation a schema."""
    if fault is Fault.MALFORMED and not json_requested:
        return None
    if fault is Fault.SCHEMA_VIOLATION and not schema_given:
        return None
    return fault


def output_token_count(profile: ModelProfile, rng: random.Random) -> int:
    """How long an unconstrained answer is: the mean, give or take the relative jitter."""
    jitter = profile.output_tokens_jitter
    factor = 1.0 + rng.uniform(-jitter, jitter)
    return max(1, round(profile.output_tokens_mean * factor))


def estimate_tokens(text: str) -> int:
    """Tokens in a text by the usual rule of thumb for English: four characters each."""
    return max(1, math.ceil(len(text) / 4))


def cap_completion(text: str, *, max_tokens: int | None) -> tuple[str, int, str]:
    """Cut an answer at max_tokens like a real server: (content, completion_tokens, reason)."""
    tokens = estimate_tokens(text)
    if max_tokens is None or tokens <= max_tokens:
        return text, tokens, "stop"
    return text[: max_tokens * 4], max_tokens, "length"


@dataclasses.dataclass(frozen=True)
class Reply:
    """A decided HTTP response, to be sent after sleeping `delay` seconds."""

    status: int
    body: dict[str, Any]
    delay: float
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    # A streamed success's first text comes after this long, the rest by `delay`.
    first_token_delay: float = 0.0


def error_body(message: str, *, kind: str, code: str) -> dict[str, Any]:
    """An error in the shape OpenAI clients parse."""
    return {"error": {"message": message, "type": kind, "code": code, "param": None}}


_FAULT_ERRORS = {
    Fault.TOO_MANY_REQUESTS: (429, "Rate limit reached", "requests", "rate_limit_exceeded"),
    Fault.SERVER_ERROR: (500, "The server had an error", "server_error", "internal_error"),
    Fault.TIMEOUT: (504, "The upstream model timed out", "server_error", "timeout"),
}


def fault_reply(fault: Fault | None, profile: ModelProfile, *, delay: float) -> Reply | None:
    """The error response for a fault that replaces the answer; None when there is none.

    A 429 comes at once, as rate limiters answer before doing any work; a timeout
    hangs for the profile's hang time; a 500 takes `delay`.
    """
    if fault not in _FAULT_ERRORS:
        return None
    status, message, kind, code = _FAULT_ERRORS[fault]
    error = error_body(f"{message} (simulated)", kind=kind, code=code)
    if fault is Fault.TOO_MANY_REQUESTS:
        retry = profile.retry_after_seconds
        headers = {"Retry-After": f"{retry:g}", "retry-after-ms": str(round(retry * 1000))}
        return Reply(status, error, 0.0, headers)
    hang = profile.timeout_hang_seconds if fault is Fault.TIMEOUT else delay
    return Reply(status, error, hang)
