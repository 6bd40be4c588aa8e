"""What the scaling policy reads: arrival windows, measured start-up, the seasonal
memory behind the predictive floor, Erlang C sizing, and cron schedules."""

from __future__ import annotations

import datetime
import math

import pytest

from trimtab.reconcile import cron
from trimtab.reconcile.agentpool import arrivals, erlang, forecast, need, startup

pytestmark = pytest.mark.unit
T0 = 1_700_000_000.0


def feed(per_second: list[int], *, start: float = T0) -> arrivals.Arrivals:
    """Readings once a second of a counter that grows by `per_second[i]` in second i."""
    window, total, seen = arrivals.ArrivalWindow(), 0, arrivals.Arrivals.none()
    for i, count in enumerate([0, *per_second]):
        total += count
        seen = window.observe(start + i, total)
    return seen


# --- arrivals ---------------------------------------------------------------------------


def test_windows_count_what_arrived() -> None:
    seen = feed([10] * 40)
    assert (seen.last_rate, seen.short_count, seen.smooth_rate) == (10.0, 50, 10.0)
    assert seen.trend == 0.0


def test_a_first_reading_is_no_arrival() -> None:
    seen = arrivals.ArrivalWindow().observe(T0, 12_345)  # a stream with a long history
    assert (seen.last_rate, seen.short_count, seen.any) == (0.0, 0, False)


def test_windows_shrink_to_the_history_there_is() -> None:
    seen = feed([6, 6])
    assert (seen.short_seconds, seen.short_count) == (3.0, 12)


def test_a_counter_that_goes_back_counts_nothing() -> None:
    window = arrivals.ArrivalWindow()
    window.observe(T0, 100)
    assert window.observe(T0 + 1, 5).short_count == 0  # the stream was created afresh


def test_a_gap_in_readings_zeroes_the_missed_seconds() -> None:
    window = arrivals.ArrivalWindow()
    window.observe(T0, 0)
    window.observe(T0 + 1, 50)
    later = window.observe(T0 + 100, 50)
    assert (later.short_count, later.smooth_rate) == (0, 0.0)


def test_a_rise_shows_as_a_trend_and_a_burst() -> None:
    seen = feed([2] * 300 + [2, 4, 6, 8, 10, 12, 14, 16, 18, 20])
    assert seen.trend > need.TREND_Z * seen.trend_sigma
    assert need.burst_rate(seen) == pytest.approx(16.0)
    assert need.rising(seen) == seen.trend


def test_steady_noise_is_no_burst() -> None:
    seen = feed([9, 11] * 200)
    assert need.burst_rate(seen) is None
    assert need.rising(seen) == 0.0


def test_long_rate_follows_slowly() -> None:
    seen = feed([0] * 10 + [10] * 300)
    assert 5.0 < seen.long_rate < 7.0  # 1 - e^-1 of the way in one time constant


@pytest.mark.parametrize(
    "figures",
    [
        pytest.param(arrivals.Arrivals(math.nan, -3, 0.0, math.inf, math.nan, -1, -5, 0), id="bad"),
        pytest.param(arrivals.Arrivals(1e300, 10**20, 5, 1e300, 1e300, 1e300, 1e300, 0), id="huge"),
    ],
)  # fmt: skip
def test_sane_figures_are_finite(figures: arrivals.Arrivals) -> None:
    sane = figures.sane()
    values = (sane.last_rate, sane.smooth_rate, sane.long_rate, sane.trend, sane.trend_sigma)
    assert all(math.isfinite(v) for v in values)
    assert sane.short_count >= 0
    assert sane.short_seconds >= 1


# --- start-up ---------------------------------------------------------------------------


def test_start_up_is_measured_from_ask_to_ready() -> None:
    state = startup.track(startup.Startup(), now=0.0, current=1, desired=3, ready=1)
    state = startup.track(state, now=5.0, current=3, desired=3, ready=2)
    assert state.seconds() is None  # not all ready yet
    state = startup.track(state, now=12.0, current=3, desired=3, ready=3)
    assert (state.seconds(), state.asks) == (12.0, ())


def test_an_ask_no_longer_wanted_is_dropped() -> None:
    state = startup.track(startup.Startup(), now=0.0, current=1, desired=8, ready=1)
    state = startup.track(state, now=2.0, current=8, desired=2, ready=2)
    assert (state.asks, state.samples) == ((), ())


def test_start_up_is_a_high_quantile_of_recent_samples() -> None:
    state = startup.Startup(samples=tuple(float(s) for s in range(1, 21)))
    assert state.seconds() == 19.0


def test_samples_are_bounded() -> None:
    state = startup.Startup()
    for i in range(50):
        state = startup.track(state, now=float(i), current=0, desired=1, ready=1)
    assert len(state.samples) == startup.SAMPLES_KEPT


# --- the seasonal memory ----------------------------------------------------------------

CYCLE = forecast.Cycle(period_seconds=600, bucket_seconds=10, lookback=3)


def seasonal_with_bursts(cycles: int, *, at: int = 300, size: int = 400) -> forecast.Seasonal:
    """`cycles` cycles of a quiet 1/s with a burst of `size` in the bucket at `at` s."""
    memory = forecast.Seasonal(CYCLE)
    for k in range(cycles):
        for second in range(600):
            memory.add(k * 600 + second, size if second == at else 1)
    return memory


def test_no_prediction_without_a_whole_cycle() -> None:
    assert seasonal_with_bursts(0).predicted_rate(100, 110) is None
    memory = forecast.Seasonal(CYCLE)
    memory.add(0, 1)
    assert memory.predicted_rate(300, 320) is None


def test_a_recurring_burst_is_predicted_ahead() -> None:
    memory = seasonal_with_bursts(3)
    ahead = memory.predicted_rate(3 * 600 + 290, 3 * 600 + 310)
    assert ahead == pytest.approx((400 + 9) / 10)


def test_quiet_phases_predict_the_quiet_rate() -> None:
    memory = seasonal_with_bursts(3)
    assert memory.predicted_rate(3 * 600 + 100, 3 * 600 + 120) == pytest.approx(1.0)


def test_one_odd_cycle_is_averaged_down() -> None:
    memory = seasonal_with_bursts(2, size=1)
    for second in range(600):
        memory.add(1200 + second, 301 if second == 300 else 1)
    assert memory.predicted_rate(1800 + 300, 1800 + 300) == pytest.approx(
        (1 + 1 + 301 + 9 * 3) / 3 / 10
    )


def test_memory_is_trimmed_to_the_lookback() -> None:
    memory = seasonal_with_bursts(20)
    assert len(memory.counts) <= CYCLE.span_buckets + 1


def test_recorded_seconds_load_into_buckets() -> None:
    memory = forecast.Seasonal(CYCLE)
    memory.load({0: 5, 1: 5, 600: 7}, since=0)
    assert memory.counts == {0: 10, 60: 7}


# --- Erlang C ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slots", "load", "expected"),
    [
        pytest.param(1, 0.5, 0.5, id="mm1"),  # M/M/1: P(wait) = rho
        pytest.param(2, 1.0, 1 / 3, id="mm2"),
        pytest.param(10, 8.0, 0.409, id="ten-slots"),
        pytest.param(5, 5.0, 1.0, id="overloaded"),
    ],
)  # fmt: skip
def test_erlang_c(slots: int, load: float, expected: float) -> None:
    assert erlang.erlang_c(slots, load) == pytest.approx(expected, abs=1e-3)


def _wait_tail(slots: int, load: float, *, service: float, budget: float) -> float:
    """P(wait > budget) in an M/M/c queue: Erlang C times the exponential tail."""
    if slots <= load:
        return 1.0
    return erlang.erlang_c(slots, load) * math.exp(-(slots - load) * budget / service)


def test_slots_for_wait_meets_its_tail() -> None:
    for load in (0.5, 5.0, 40.0, 150.0):
        c = int(erlang.slots_for_wait(load, service=2.0, budget=3.0, tail=0.02))
        assert _wait_tail(c, load, service=2.0, budget=3.0) <= 0.02
        assert _wait_tail(c - 1, load, service=2.0, budget=3.0) > 0.02


def test_halfin_whitt_continues_the_exact_sizing() -> None:
    exact = erlang.slots_for_wait(erlang.EXACT_LIMIT, service=1.0, budget=0.0, tail=0.02)
    approx = erlang.slots_for_wait(erlang.EXACT_LIMIT + 1, service=1.0, budget=0.0, tail=0.02)
    assert abs(approx - exact) / exact < 0.02


def test_a_longer_budget_needs_fewer_slots() -> None:
    tight = erlang.slots_for_wait(40.0, service=2.0, budget=0.0, tail=0.02)
    loose = erlang.slots_for_wait(40.0, service=2.0, budget=6.0, tail=0.02)
    assert loose < tight


# --- cron -------------------------------------------------------------------------------

TUESDAY = datetime.datetime(2026, 12, 1, 10, 30, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param("0 9 * * 1-5", datetime.datetime(2026, 12, 1, 9, 0), id="weekday-morning"),
        pytest.param("*/15 * * * *", datetime.datetime(2026, 12, 1, 10, 30), id="step-now"),
        pytest.param("0 9 * * sat,sun", datetime.datetime(2026, 11, 29, 9, 0), id="weekend"),
        pytest.param("0 0 29 2 *", datetime.datetime(2024, 2, 29, 0, 0), id="leap-day"),
        pytest.param("0 12 1 * *", datetime.datetime(2026, 11, 1, 12, 0), id="month-start"),
        pytest.param("0 0 * * 7", datetime.datetime(2026, 11, 29, 0, 0), id="seven-is-sunday"),
        pytest.param("0 0 13 * 5", datetime.datetime(2026, 11, 27, 0, 0), id="day-or-weekday"),
    ],
)  # fmt: skip
def test_last_fired(expression: str, expected: datetime.datetime) -> None:
    found = cron.parse(expression).last_fired(TUESDAY)
    assert found == expected.replace(tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        pytest.param("0 9 * *", "want 5 fields", id="four-fields"),
        pytest.param("61 * * * *", "minute '61': values must lie in 0-59", id="minute-61"),
        pytest.param("0 17-9 * * *", "hour '17-9': values must lie in 0-23, in order", id="back"),
        pytest.param("*/0 * * * *", "a step must be at least 1", id="zero-step"),
        pytest.param("0 9 * * funday", "'funday' is not a number", id="bad-name"),
    ],
)  # fmt: skip
def test_bad_cron_says_what_is_wrong(expression: str, words: str) -> None:
    with pytest.raises(cron.CronError, match=words):
        cron.parse(expression)
