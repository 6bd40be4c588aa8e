"""The latency sketch's error bound, merge algebra and encoding; the windowed rate helpers."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trimtab.stats.rates import window_keys
from trimtab.stats.sketch import DEFAULT_ALPHA, MIN_VALUE, LatencySketch

ALPHA = DEFAULT_ALPHA
# Values exactly on a bucket boundary sit at the error bound; allow float rounding there.
ROUNDING = 1e-9

latencies = st.lists(
    st.floats(min_value=1e-4, max_value=1e3, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=200,
)


def sketch_of(values: list[float], alpha: float = ALPHA) -> LatencySketch:
    sketch = LatencySketch(alpha)
    for value in values:
        sketch.add(value)
    return sketch


def assert_same(left: LatencySketch, right: LatencySketch) -> None:
    assert (left.alpha, left.zero, left.buckets) == (right.alpha, right.zero, right.buckets)
    assert left.max == right.max
    assert left.sum == pytest.approx(right.sum)


@pytest.mark.parametrize("q", [pytest.param(q, id=f"q{q}") for q in (0.0, 0.5, 0.95, 0.99, 1.0)])
@given(values=latencies)
def test_quantile_is_within_alpha_of_the_exact_quantile(q: float, values: list[float]) -> None:
    exact = sorted(values)
    rank = q * (len(exact) - 1)
    lower, upper = exact[math.floor(rank)], exact[math.ceil(rank)]
    answer = sketch_of(values).quantile(q)
    assert answer is not None
    assert (1 - ALPHA) * lower * (1 - ROUNDING) <= answer <= (1 + ALPHA) * upper * (1 + ROUNDING)


@given(values=latencies)
def test_summary_statistics_are_exact(values: list[float]) -> None:
    sketch = sketch_of(values)
    assert sketch.count == len(values)
    assert sketch.sum == pytest.approx(math.fsum(values))
    assert sketch.mean == pytest.approx(math.fsum(values) / len(values))
    assert sketch.max == max(values)


@given(parts=st.lists(latencies, max_size=6))
def test_merging_equals_adding_every_value_to_one_sketch(parts: list[list[float]]) -> None:
    whole = sketch_of([value for part in parts for value in part])
    assert_same(LatencySketch.merged(sketch_of(part) for part in parts), whole)


@given(a=latencies, b=latencies, c=latencies)
def test_merge_is_commutative_and_associative(
    a: list[float], b: list[float], c: list[float]
) -> None:
    def merge(*values: list[float]) -> LatencySketch:
        return LatencySketch.merged(sketch_of(v) for v in values)

    assert_same(merge(a, b), merge(b, a))
    left = LatencySketch.merged([merge(a, b), sketch_of(c)])
    right = LatencySketch.merged([sketch_of(a), merge(b, c)])
    assert_same(left, right)


def test_merge_in_place_keeps_the_other_sketch_unchanged() -> None:
    target, other = sketch_of([1.0]), sketch_of([2.0, 3.0])
    target.merge(other)
    assert (target.count, other.count) == (3, 2)
    assert target.max == 3.0


@given(values=st.lists(st.floats(min_value=0, max_value=1e4), max_size=50))
def test_bytes_round_trip(values: list[float]) -> None:
    sketch = sketch_of(values)
    decoded = LatencySketch.from_bytes(sketch.to_bytes())
    assert_same(decoded, sketch)
    assert decoded.to_bytes() == sketch.to_bytes()
    assert LatencySketch.from_dict(sketch.to_dict()).to_dict() == sketch.to_dict()


def test_encoding_is_compact_deterministic_json() -> None:
    sketch = LatencySketch()
    sketch.add(0.0)
    sketch.add(1.0, count=2)
    assert sketch.to_bytes() == (b'{"alpha":0.01,"buckets":{"0":2},"max":1.0,"sum":2.0,"zero":1}')


def test_empty_sketch() -> None:
    sketch = LatencySketch()
    assert (sketch.count, sketch.sum) == (0, 0.0)
    assert (sketch.quantile(0.95), sketch.mean, sketch.max) == (None, None, None)
    assert LatencySketch.merged([]).count == 0
    assert LatencySketch.from_bytes(sketch.to_bytes()).quantile(0.5) is None


def test_alpha_mismatch_refuses_to_merge() -> None:
    with pytest.raises(ValueError, match="alpha"):
        LatencySketch(0.01).merge(LatencySketch(0.02))
    with pytest.raises(ValueError, match="alpha"):
        LatencySketch.merged([LatencySketch(0.01), LatencySketch(0.05)])


def test_merged_keeps_the_alpha_of_its_inputs() -> None:
    assert LatencySketch.merged([sketch_of([1.0], alpha=0.05)]).alpha == 0.05


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(0.0, id="zero"),
        pytest.param(MIN_VALUE, id="min-value"),
        pytest.param(MIN_VALUE / 10, id="below-min"),
        pytest.param(-0.5, id="negative-clock-skew"),
    ],
)
def test_tiny_values_go_to_the_zero_bucket(value: float) -> None:
    sketch = LatencySketch()
    sketch.add(value, count=3)
    assert (sketch.zero, sketch.buckets, sketch.count) == (3, {}, 3)
    assert sketch.quantile(0.5) == 0.0


def test_zero_bucket_ranks_below_every_other_value() -> None:
    sketch = sketch_of([0.0, 0.0, 0.0, 2.0])
    assert sketch.quantile(0.5) == 0.0
    assert sketch.quantile(1.0) == pytest.approx(2.0, rel=ALPHA)


def test_add_with_a_count_equals_repeated_adds() -> None:
    counted = LatencySketch()
    counted.add(0.25, count=5)
    counted.add(0.5, count=0)
    assert_same(counted, sketch_of([0.25] * 5))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda: LatencySketch(0.0), "alpha", id="alpha-zero"),
        pytest.param(lambda: LatencySketch(1.0), "alpha", id="alpha-one"),
        pytest.param(lambda: LatencySketch().add(math.nan), "finite", id="nan"),
        pytest.param(lambda: LatencySketch().add(math.inf), "finite", id="inf"),
        pytest.param(lambda: LatencySketch().add(1.0, count=-1), "count", id="negative-count"),
        pytest.param(lambda: LatencySketch().quantile(1.5), "quantile", id="q-above-one"),
        pytest.param(lambda: LatencySketch.from_bytes(b"\xff"), "sketch", id="not-utf8"),
        pytest.param(lambda: LatencySketch.from_bytes(b"[1]"), "sketch", id="not-object"),
        pytest.param(lambda: LatencySketch.from_bytes(b'{"alpha":0.01}'), "sketch", id="missing"),
        pytest.param(
            lambda: LatencySketch.from_dict(
                {"alpha": 0.01, "zero": 0, "buckets": {"1": -2}, "sum": 0, "max": 0}
            ),
            "count",
            id="negative-bucket",
        ),
    ],
)
def test_invalid_input_is_a_value_error(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(
    ("now", "bucket", "window", "keys"),
    [
        pytest.param(100.0, 1, 5, [96, 97, 98, 99, 100], id="whole-second"),
        pytest.param(100.7, 1, 3, [98, 99, 100], id="mid-second"),
        pytest.param(100.0, 10, 30, [80, 90, 100], id="ten-second-buckets"),
        pytest.param(105.0, 10, 30, [80, 90, 100], id="mid-bucket"),
        pytest.param(105.0, 10, 10, [100], id="one-bucket"),
        pytest.param(100.0, 10, 25, [80, 90, 100], id="window-not-a-multiple"),
    ],
)
def test_window_keys(now: float, bucket: int, window: int, keys: list[int]) -> None:
    assert window_keys(now, bucket_seconds=bucket, window_seconds=window) == keys


@given(
    now=st.floats(min_value=0, max_value=2e9),
    bucket=st.integers(min_value=1, max_value=60),
    buckets_in_window=st.integers(min_value=1, max_value=120),
)
def test_a_window_of_whole_buckets_has_that_many_keys(
    now: float, bucket: int, buckets_in_window: int
) -> None:
    keys = window_keys(now, bucket_seconds=bucket, window_seconds=bucket * buckets_in_window)
    assert len(keys) == buckets_in_window
    assert all(isinstance(key, int) and key % bucket == 0 for key in keys)
    assert keys[-1] <= now < keys[-1] + bucket


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(
            lambda: window_keys(1.0, bucket_seconds=0, window_seconds=60), id="zero-bucket"
        ),
        pytest.param(
            lambda: window_keys(1.0, bucket_seconds=1, window_seconds=-1), id="negative-window"
        ),
        pytest.param(
            lambda: window_keys(1.0, bucket_seconds=10, window_seconds=5), id="under-one-bucket"
        ),
    ],
)
def test_window_keys_reject_empty_windows(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="positive"):
        call()
