"""The inference simulator's pure decisions: latency, faults, tokens, content, config."""

from __future__ import annotations

import itertools
import json
import pathlib
from typing import Any

import jsonschema
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trimtab.sim import behaviour, content, profiles
from trimtab.sim.behaviour import Fault, seeded_rng
from trimtab.sim.profiles import ModelProfile, SimConfig

DRAWS = 10_000


def profile(**fields: Any) -> ModelProfile:
    return ModelProfile(name="m", **fields)


@pytest.mark.parametrize(
    ("capacity", "in_flight", "factor"),
    [
        pytest.param(4, 0, 1.0, id="idle"),
        pytest.param(4, 1, 1.0, id="one-request"),
        pytest.param(4, 4, 1.0, id="at-capacity"),
        pytest.param(4, 5, 1.25, id="just-past-capacity"),
        pytest.param(4, 8, 2.0, id="twice-capacity"),
        pytest.param(4, 12, 3.0, id="three-times-capacity"),
        pytest.param(1, 7, 7.0, id="capacity-one"),
    ],
)
def test_delay_is_flat_up_to_capacity_then_linear(
    capacity: int, in_flight: int, factor: float
) -> None:
    prof = profile(ttft_seconds=0.1, per_token_seconds=0.01, capacity=capacity)
    delay = behaviour.delay_seconds(prof, output_tokens=20, in_flight=in_flight)
    assert delay == pytest.approx((0.1 + 0.01 * 20) * factor)


def test_delay_grows_by_equal_steps_beyond_capacity() -> None:
    prof = profile(ttft_seconds=0.05, per_token_seconds=0.001, capacity=3)
    delays = [behaviour.delay_seconds(prof, output_tokens=10, in_flight=n) for n in range(3, 10)]
    steps = [later - earlier for earlier, later in itertools.pairwise(delays)]
    assert steps == pytest.approx([steps[0]] * len(steps))
    assert steps[0] > 0


@pytest.mark.parametrize(
    "rates",
    [
        pytest.param({"rate_429": 0.1}, id="429-only"),
        pytest.param({"rate_500": 0.05, "rate_timeout": 0.02}, id="500-and-timeout"),
        pytest.param(
            {
                "rate_429": 0.1,
                "rate_500": 0.1,
                "rate_timeout": 0.1,
                "rate_malformed": 0.1,
                "rate_schema_violation": 0.1,
            },
            id="every-fault",
        ),
        pytest.param({"rate_malformed": 1.0}, id="always"),
    ],
)
def test_fault_frequencies_follow_the_rates(rates: dict[str, float]) -> None:
    prof = profile(**rates)
    rng = seeded_rng(42)
    draws = [behaviour.choose_fault(prof, rng) for _ in range(DRAWS)]
    expected = {
        Fault.TOO_MANY_REQUESTS: prof.rate_429,
        Fault.SERVER_ERROR: prof.rate_500,
        Fault.TIMEOUT: prof.rate_timeout,
        Fault.MALFORMED: prof.rate_malformed,
        Fault.SCHEMA_VIOLATION: prof.rate_schema_violation,
    }
    for fault, rate in expected.items():
        assert draws.count(fault) / DRAWS == pytest.approx(rate, abs=0.015), fault


def test_zero_rates_never_fault() -> None:
    rng = seeded_rng(0)
    assert {behaviour.choose_fault(profile(), rng) for _ in range(DRAWS)} == {None}


def test_a_fault_draw_consumes_one_number_whatever_the_rates() -> None:
    quiet, noisy = seeded_rng(5), seeded_rng(5)
    behaviour.choose_fault(profile(), quiet)
    behaviour.choose_fault(profile(rate_500=0.5, rate_429=0.5), noisy)
    assert quiet.random() == noisy.random()


@pytest.mark.parametrize(
    ("fault", "json_requested", "schema_given", "expected"),
    [
        pytest.param(Fault.MALFORMED, False, False, None, id="malformed-needs-json"),
        pytest.param(Fault.MALFORMED, True, False, Fault.MALFORMED, id="malformed-json-object"),
        pytest.param(Fault.SCHEMA_VIOLATION, True, False, None, id="violation-needs-schema"),
        pytest.param(Fault.SCHEMA_VIOLATION, True, True, Fault.SCHEMA_VIOLATION, id="violation"),
        pytest.param(Fault.SERVER_ERROR, False, False, Fault.SERVER_ERROR, id="500-always"),
        pytest.param(None, True, True, None, id="no-fault"),
    ],
)
def test_content_faults_apply_only_where_visible(
    fault: Fault | None, json_requested: bool, schema_given: bool, expected: Fault | None
) -> None:
    got = behaviour.applicable_fault(
        fault, json_requested=json_requested, schema_given=schema_given
    )
    assert got is expected


@pytest.mark.parametrize(
    ("fault", "status", "delay"),
    [
        pytest.param(Fault.TOO_MANY_REQUESTS, 429, 0.0, id="429-at-once"),
        pytest.param(Fault.SERVER_ERROR, 500, 0.2, id="500-after-delay"),
        pytest.param(Fault.TIMEOUT, 504, 9.0, id="timeout-hangs"),
    ],
)
def test_fault_replies(fault: Fault, status: int, delay: float) -> None:
    prof = profile(timeout_hang_seconds=9.0, retry_after_seconds=2.0)
    reply = behaviour.fault_reply(fault, prof, delay=0.2)
    assert reply is not None
    assert (reply.status, reply.delay) == (status, delay)
    assert set(reply.body["error"]) >= {"message", "type", "code"}
    if status == 429:
        assert reply.headers["Retry-After"] == "2"


@pytest.mark.parametrize("fault", [None, Fault.MALFORMED, Fault.SCHEMA_VIOLATION])
def test_content_faults_have_no_error_reply(fault: Fault | None) -> None:
    assert behaviour.fault_reply(fault, profile(), delay=0.1) is None


@pytest.mark.parametrize(
    ("mean", "jitter"),
    [pytest.param(60, 0.3, id="default"), pytest.param(10, 0.0, id="no-jitter")],
)
def test_output_tokens_stay_within_the_jitter(mean: int, jitter: float) -> None:
    prof = profile(output_tokens_mean=mean, output_tokens_jitter=jitter)
    rng = seeded_rng(1)
    counts = [behaviour.output_token_count(prof, rng) for _ in range(1000)]
    assert min(counts) >= round(mean * (1 - jitter))
    assert max(counts) <= round(mean * (1 + jitter))
    assert sum(counts) / len(counts) == pytest.approx(mean, rel=0.05)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        pytest.param("", 1, id="empty-is-one"),
        pytest.param("abcd", 1, id="four-chars"),
        pytest.param("abcde", 2, id="rounds-up"),
        pytest.param("x" * 400, 100, id="long"),
    ],
)
def test_token_estimate(text: str, tokens: int) -> None:
    assert behaviour.estimate_tokens(text) == tokens


@pytest.mark.parametrize(
    ("max_tokens", "tokens", "finish"),
    [
        pytest.param(None, 25, "stop", id="uncapped"),
        pytest.param(100, 25, "stop", id="under-cap"),
        pytest.param(25, 25, "stop", id="exactly-cap"),
        pytest.param(10, 10, "length", id="cut"),
    ],
)
def test_completion_cap(max_tokens: int | None, tokens: int, finish: str) -> None:
    text, got_tokens, got_finish = behaviour.cap_completion("y" * 100, max_tokens=max_tokens)
    assert (got_tokens, got_finish) == (tokens, finish)
    assert len(text) == min(100, tokens * 4)


@pytest.mark.parametrize("n_tokens", [1, 5, 60, 500])
def test_text_completion_has_about_n_tokens(n_tokens: int) -> None:
    text = content.text_completion(n_tokens, seeded_rng(n_tokens))
    assert n_tokens <= behaviour.estimate_tokens(text) <= n_tokens + 40
    assert text.strip()


# Schemas from the subset the simulator supports; property names include
# `confidence` so the tunable distribution is exercised under random bounds too.
_names = st.sampled_from(["intent", "confidence", "reply", "tags", "score", "a_b"])
_bounds = st.lists(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=2, max_size=2
).map(sorted)
_int_bounds = st.lists(st.integers(-1000, 1000), min_size=2, max_size=2).map(sorted)
_lengths = st.lists(st.integers(0, 30), min_size=2, max_size=2).map(sorted)


def _drop(doc: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in keys}


_leaves = st.one_of(
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.builds(
        lambda b, drop: _drop({"type": "number", "minimum": b[0], "maximum": b[1]}, drop),
        _bounds,
        st.lists(st.sampled_from(["minimum", "maximum"]), max_size=2),
    ),
    st.builds(
        lambda b, drop: _drop({"type": "integer", "minimum": b[0], "maximum": b[1]}, drop),
        _int_bounds,
        st.lists(st.sampled_from(["minimum", "maximum"]), max_size=2),
    ),
    st.builds(
        lambda n: {"type": "string", "minLength": n[0], "maxLength": n[1]},
        _lengths,
    ),
    st.just({"type": "number", "minimum": 0, "maximum": 1}),
    st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=5)), min_size=1, unique=True).map(
        lambda values: {"enum": values}
    ),
    st.integers().map(lambda value: {"const": value}),
)


def _object_of(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(_names, children, max_size=4).flatmap(
        lambda props: st.sets(st.sampled_from(sorted(props) or ["intent"])).map(
            lambda required: {"type": "object", "properties": props, "required": sorted(required)}
        )
    )


def _array_of(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda items, n: {"type": "array", "items": items, "minItems": n[0], "maxItems": n[1]},
        children,
        st.lists(st.integers(0, 4), min_size=2, max_size=2).map(sorted),
    )


def _extend(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        _object_of(children),
        _array_of(children),
        st.lists(children, min_size=1, max_size=3).map(lambda subs: {"anyOf": subs}),
    )


schemas = st.recursive(_leaves, _extend, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(schema=schemas, seed=st.integers(0, 2**32), mean=st.floats(0, 1))
def test_generated_json_validates(schema: dict[str, Any], seed: int, mean: float) -> None:
    value = content.json_for_schema(schema, seeded_rng(seed), confidence_mean=mean)
    jsonschema.validate(value, schema)
    json.dumps(value)


@settings(max_examples=300, deadline=None)
@given(schema=schemas, seed=st.integers(0, 2**32))
def test_violating_json_fails_validation(schema: dict[str, Any], seed: int) -> None:
    value = content.violating_json(schema, seeded_rng(seed))
    assert not jsonschema.Draft202012Validator(schema).is_valid(value)
    json.dumps(value)


TRIAGE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "intent": {"enum": ["billing", "refund", "other"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "summary": {"type": "string", "maxLength": 80},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
        "priority": {"oneOf": [{"type": "integer", "minimum": 1, "maximum": 5}, {"type": "null"}]},
    },
    "required": ["intent", "confidence"],
}


def test_every_property_is_filled_and_a_missing_required_key_is_a_violation() -> None:
    rng = seeded_rng(3)
    value = content.json_for_schema(TRIAGE, rng)
    assert set(value) == set(TRIAGE["properties"])
    violation = content.violating_json(TRIAGE, rng)
    assert isinstance(violation, dict)
    assert not {"intent", "confidence"} <= set(violation)


@pytest.mark.parametrize(
    ("mean", "share_below_0_7"),
    [
        pytest.param(0.85, (0.0, 0.15), id="default-mostly-confident"),
        pytest.param(0.5, (0.95, 1.0), id="low-mean-mostly-below"),
        pytest.param(0.7, (0.35, 0.65), id="threshold-mean-half"),
    ],
)
def test_confidence_follows_its_mean(mean: float, share_below_0_7: tuple[float, float]) -> None:
    rng = seeded_rng(11)
    draws = [
        content.json_for_schema(TRIAGE, rng, confidence_mean=mean)["confidence"] for _ in range(500)
    ]
    assert all(0 <= c <= 1 for c in draws)
    share = sum(c < 0.7 for c in draws) / len(draws)
    assert share_below_0_7[0] <= share <= share_below_0_7[1]


def test_same_seed_same_content() -> None:
    first = content.json_for_schema(TRIAGE, seeded_rng(9))
    again = content.json_for_schema(TRIAGE, seeded_rng(9))
    assert first == again


def test_a_schema_that_accepts_everything_cannot_be_violated() -> None:
    with pytest.raises(ValueError, match="accepts every value"):
        content.violating_json({}, seeded_rng(0))


def test_malformed_json_is_not_json() -> None:
    valid = json.dumps(content.json_for_schema(TRIAGE, seeded_rng(2)))
    with pytest.raises(json.JSONDecodeError):
        json.loads(content.malformed_json(valid))


@pytest.mark.parametrize(
    ("name", "key"),
    [
        pytest.param("history", "tickets", id="history"),
        pytest.param("search", "documents", id="search"),
        pytest.param("anything", "echo", id="echo"),
    ],
)
def test_tool_results_are_deterministic(name: str, key: str) -> None:
    body = {"customer": "c-17", "query": "refund"}
    result = content.tool_result(name, body)
    assert result == content.tool_result(name, dict(reversed(body.items())))
    assert key in result


def test_config_defaults_are_sane() -> None:
    config = SimConfig.from_dict({})
    assert config.seed == 0
    assert config.models == {}
    assert config.tool_delay_seconds == 0.01
    default = config.profile_for("unknown-model")
    assert (default.ttft_seconds, default.per_token_seconds) == (0.05, 0.002)
    assert (default.output_tokens_mean, default.output_tokens_jitter) == (60, 0.3)
    assert (default.capacity, default.retry_after_seconds, default.timeout_hang_seconds) == (
        8,
        1.0,
        30.0,
    )
    assert behaviour.choose_fault(default, seeded_rng(0)) is None


def test_config_from_dict_names_models_by_key() -> None:
    config = SimConfig.from_dict(
        {
            "seed": 5,
            "models": {"small": {"ttft_seconds": 0.01, "rate_429": 0.2}, "plain": None},
            "default": {"capacity": 2},
        }
    )
    assert config.seed == 5
    assert config.profile_for("small").name == "small"
    assert config.profile_for("small").rate_429 == 0.2
    assert config.profile_for("small").capacity == 8
    assert config.profile_for("plain") == ModelProfile(name="plain")
    assert config.profile_for("other").capacity == 2


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param({"models": {"m": {"rate_429": 0.7, "rate_500": 0.5}}}, id="rates-above-one"),
        pytest.param({"models": {"m": {"rate_500": -0.1}}}, id="negative-rate"),
        pytest.param({"models": {"m": {"capacity": 0}}}, id="zero-capacity"),
        pytest.param({"models": {"m": {"ttft": 1}}}, id="unknown-field"),
        pytest.param({"sede": 1}, id="typo-at-top"),
    ],
)
def test_invalid_config_is_rejected(doc: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        SimConfig.from_dict(doc)


@pytest.mark.parametrize(
    ("filename", "text"),
    [
        pytest.param("sim.yaml", "seed: 3\nmodels:\n  m:\n    capacity: 2\n", id="yaml"),
        pytest.param("sim.json", '{"seed": 3, "models": {"m": {"capacity": 2}}}', id="json"),
    ],
)
def test_load_reads_yaml_and_json(tmp_path: pathlib.Path, filename: str, text: str) -> None:
    path = tmp_path / filename
    path.write_text(text)
    config = profiles.load(path)
    assert config.seed == 3
    assert config.profile_for("m").capacity == 2
