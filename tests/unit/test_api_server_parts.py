"""The HTTP API's pure parts: its body types agree with the runtime's states, bearer
tokens are read strictly, caches expire and stay bounded, and rate limits refill."""

from __future__ import annotations

import re
import typing

import pytest

from trimtab.api import rest
from trimtab.queue import eventhub, runindex, wire
from trimtab.sdk import client as sdk_client
from trimtab.server import auth, limits

pytestmark = pytest.mark.unit


def test_the_bodies_states_are_the_runtimes() -> None:
    assert set(typing.get_args(rest.RunStatus)) == {s.value for s in wire.RunStatus}
    assert set(typing.get_args(rest.StepState)) == {s.value for s in wire.StepState}
    assert set(typing.get_args(rest.AttemptOutcome)) == {o.value for o in wire.AttemptOutcome}


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Bearer a.b-c_d", "a.b-c_d")],
    ids=["plain", "lowercase-and-spaces", "jwt-like"],
)
def test_a_bearer_header_gives_its_token(header: str, token: str) -> None:
    assert auth.bearer_token(header) == token


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwdw==", "abc"],
    ids=["none", "empty", "no-token", "blank-token", "basic", "bare"],
)  # fmt: skip
def test_anything_else_is_unauthenticated(header: str | None) -> None:
    with pytest.raises(auth.Unauthenticated, match="Authorization: Bearer"):
        auth.bearer_token(header)


def test_cached_answers_expire_and_the_cache_stays_bounded() -> None:
    cache: auth.TtlCache[str, bool] = auth.TtlCache(ttl=10, most=2)
    cache.put("a", False, now=0)
    assert cache.get("a", now=9.9) == (True, False)  # a cached refusal is a hit too
    assert cache.get("a", now=10.0) == (False, None)
    cache.put("b", True, now=0)
    cache.put("c", True, now=0)
    cache.put("d", True, now=0)
    assert cache.get("b", now=1) == (False, None)  # the oldest went first
    assert cache.get("d", now=1) == (True, True)


def test_a_need_describes_itself_as_rbac_would() -> None:
    need = auth.Need("update", sub=auth.Sub.REVIEWS)
    assert need.describe("shop", "support") == (
        "update agentworkflows/reviews 'support' in namespace 'shop'"
    )
    assert auth.Need("list", resource="agentpools").describe("shop", "") == (
        "list agentpools in namespace 'shop'"
    )


def test_each_caller_has_its_own_bucket_which_refills_at_its_rate() -> None:
    limiter = limits.RateLimiter(rate=2.0, burst=3)
    assert [limiter.take("a", now=0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a", now=0) == pytest.approx(0.5)
    assert limiter.take("b", now=0) == 0.0  # another caller is not held back
    assert limiter.take("a", now=0.5) == 0.0
    assert limiter.take("a", now=0.5) > 0


@pytest.mark.parametrize(
    ("a", "b", "newer"),
    [("2-0", "1-9", True), ("1-10", "1-9", True), ("1-9", "1-9", False), ("0", "1-0", False),
     ("1-0", "0", True)],
    ids=["later-ms", "later-seq-numerically", "same", "zero", "after-zero"],
)  # fmt: skip
def test_stream_ids_compare_as_numbers(a: str, b: str, newer: bool) -> None:
    assert eventhub._newer(a, b) is newer


def test_a_cursor_round_trips_and_garbage_is_refused() -> None:
    cursor = runindex.encode_cursor(1700000000123.456, "abc")
    assert runindex.decode_cursor(cursor) == (1700000000123.456, "abc")
    for bad in ("", "x", "1~", "one~a"):
        with pytest.raises(runindex.BadCursorError):
            runindex.decode_cursor(bad)


@pytest.mark.parametrize(
    ("inputs", "says"),
    [({}, "(the whole object) fail the workflow's spec.inputs schema: 'message' is a required"),
     ({"message": 5}, "inputs['message'] fail the workflow's spec.inputs schema: 5 is not of"),
     ({"message": "x" * 30}, "is too long")],
    ids=["missing", "wrong-type", "too-long"],
)  # fmt: skip
def test_inputs_are_checked_against_the_workflows_schema(
    inputs: dict[str, object], says: str
) -> None:
    schema = {"type": "object", "required": ["message"],
              "properties": {"message": {"type": "string", "maxLength": 20}}}  # fmt: skip
    with pytest.raises(sdk_client.InvalidInputsError, match=re.escape(says)):
        sdk_client.check_inputs_schema(schema, inputs)
    sdk_client.check_inputs_schema(schema, {"message": "fine"})
    sdk_client.check_inputs_schema(None, inputs)  # no schema: anything goes
