"""The demo report: its summary numbers, the node-cost model it quotes, and the files it writes."""

from __future__ import annotations

import pathlib

import pytest

from trimtab_dev.demo import trace_chart
from trimtab_dev.demo.report import summary_rows, write_report
from trimtab_dev.demo.timeline import (
    ON_DEMAND_PER_REPLICA_HOUR,
    SPOT_PER_REPLICA_HOUR,
    PoolSample,
    RunsSample,
    Timeline,
    capacity_cost,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHARTS = ["queue_depth.png", "replicas.png", "p95.png", "run_latency.png", "cost.png"]
SETTINGS = {"duration": "30s", "rate": 2.5, "seed": 7}

# Replicas go 0 -> 3 -> 0 over t = 0..30; ready follows desired one second late.
DESIRED = [0] * 5 + [1, 2, 3] + [3] * 12 + [2, 1] + [0] * 9
# 0.1 .. 2.0 in a fixed scrambled order: nearest-rank p50 is the 10th value (1.0),
# p95 the 19th (1.9).
RUN_SECONDS = [((i * 7) % 20 + 1) / 10 for i in range(20)]


def pool_samples(pool: str, capacity: str) -> list[PoolSample]:
    samples = []
    for t, desired in enumerate(DESIRED):
        ready = DESIRED[t - 1] if t else 0
        samples.append(
            PoolSample(
                t=float(t),
                pool=pool,
                capacity=capacity,
                desired=desired,
                ready=ready,
                queue_depth=desired * 4,
                in_flight=ready,
                p95_seconds=None if ready == 0 else 0.5 + 0.1 * ready,
                breaker="Closed",
            )
        )
    return samples


def demo_timeline() -> Timeline:
    return Timeline(
        pools=pool_samples("support-small", "OnDemand") + pool_samples("batch", "Spot"),
        runs=[
            RunsSample(t=0.0, submitted=0, succeeded=0, failed=0, review=0, tokens=0, cost=0.0),
            RunsSample(
                t=10.0, submitted=15, succeeded=8, failed=1, review=1, tokens=4000, cost=0.04
            ),
            RunsSample(
                t=20.0, submitted=32, succeeded=21, failed=2, review=2, tokens=9000, cost=0.09
            ),
            RunsSample(
                t=30.0, submitted=40, succeeded=30, failed=3, review=2, tokens=12345, cost=0.1234
            ),
        ],
        run_seconds=list(RUN_SECONDS),
        model_cost_by_pool={"support-small": 0.0834, "batch": 0.04},
        load_seconds=30.0,
    )


def test_run_seconds_fixture_is_a_permutation() -> None:
    assert sorted(RUN_SECONDS) == [i / 10 for i in range(1, 21)]


def test_summary_counts_come_from_the_last_runs_sample() -> None:
    rows = dict(summary_rows(demo_timeline()))
    assert rows["runs submitted"] == "40"
    assert rows["runs succeeded"] == "30"
    assert rows["runs in review"] == "2"
    assert rows["runs dead-lettered or failed"] == "3"
    assert rows["runs still running"] == "5"  # 40 - 30 - 3 - 2
    assert rows["tokens"] == "12345"
    assert rows["model cost"] == "$0.1234"


def test_summary_percentiles_are_nearest_rank() -> None:
    rows = dict(summary_rows(demo_timeline()))
    assert rows["run time p50"] == "1.00 s"
    assert rows["run time p95"] == "1.90 s"


def test_summary_peaks_and_node_cost() -> None:
    timeline = demo_timeline()
    rows = dict(summary_rows(timeline))
    assert rows["pool batch"] == "peak 3 replicas"
    assert rows["pool support-small"] == "peak 3 replicas"
    cost = capacity_cost(timeline)
    assert rows["node cost"] == (
        f"${cost.actual:.4f} run vs ${cost.peak_on_demand:.4f} peak on-demand"
    )
    assert rows["node cost saving"] == f"{cost.saving:.0%}"


def test_summary_of_an_empty_timeline() -> None:
    rows = dict(summary_rows(Timeline()))
    assert rows["runs submitted"] == "0"
    assert rows["runs still running"] == "0"
    assert rows["run time p50"] == "-"
    assert rows["run time p95"] == "-"
    assert rows["node cost saving"] == "0%"


def test_still_running_never_goes_below_zero() -> None:
    timeline = Timeline(
        runs=[RunsSample(t=1.0, submitted=3, succeeded=3, failed=1, review=0, tokens=0, cost=0.0)]
    )
    assert dict(summary_rows(timeline))["runs still running"] == "0"


def test_capacity_cost_of_one_spot_pool_for_an_hour() -> None:
    def sample(t: float) -> PoolSample:
        return PoolSample(
            t=t,
            pool="batch",
            capacity="Spot",
            desired=2,
            ready=2,
            queue_depth=0,
            in_flight=0,
            p95_seconds=None,
            breaker="Closed",
        )

    cost = capacity_cost(Timeline(pools=[sample(0.0), sample(3600.0)]))
    assert cost.spot_replica_hours == pytest.approx(2.0)
    assert cost.on_demand_replica_hours == 0.0
    assert cost.actual == pytest.approx(2 * SPOT_PER_REPLICA_HOUR)
    assert cost.peak_on_demand == pytest.approx(2 * ON_DEMAND_PER_REPLICA_HOUR)
    assert cost.saving == pytest.approx(1 - SPOT_PER_REPLICA_HOUR / ON_DEMAND_PER_REPLICA_HOUR)


def test_capacity_cost_of_the_demo_timeline() -> None:
    cost = capacity_cost(demo_timeline())
    # Ready at t is desired at t - 1, held for one second until the next sample; the
    # samples at t = 0..29 carry ready = 0, DESIRED[0], ..., DESIRED[28].
    replica_hours = sum(DESIRED[:29]) / 3600
    assert cost.spot_replica_hours == pytest.approx(replica_hours)
    assert cost.on_demand_replica_hours == pytest.approx(replica_hours)
    assert 0 < cost.saving < 1


def test_write_report_writes_the_charts_and_the_page(tmp_path: pathlib.Path) -> None:
    out_dir = tmp_path / "nested" / "report"
    written = write_report(demo_timeline(), out_dir, settings=SETTINGS)
    assert sorted(p.name for p in written) == sorted([*CHARTS, "report.md"])
    assert len(written) == 6
    for path in written:
        assert path.is_file()
        assert path.parent == out_dir
    for name in CHARTS:
        data = (out_dir / name).read_bytes()
        assert data.startswith(PNG_MAGIC)
        assert len(data) > 5 * 1024, name


def test_report_page_links_charts_and_quotes_summary_and_settings(tmp_path: pathlib.Path) -> None:
    write_report(demo_timeline(), tmp_path, settings=SETTINGS)
    page = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert page.startswith("# ")
    for name in CHARTS:
        assert f"]({name})" in page
    assert "| runs succeeded | 30 |" in page
    assert "| run time p95 | 1.90 s |" in page
    for key, value in SETTINGS.items():
        assert f"| {key} | {value} |" in page
    assert "## Cost" in page
    cost = capacity_cost(demo_timeline())
    assert f"${cost.actual:.4f}" in page
    assert f"${cost.peak_on_demand:.4f}" in page
    assert f"{cost.saving:.0%}" in page


def test_empty_run_seconds_still_draws_run_latency(tmp_path: pathlib.Path) -> None:
    timeline = demo_timeline()
    timeline.run_seconds = []
    written = write_report(timeline, tmp_path, settings={})
    chart = tmp_path / "run_latency.png"
    assert chart in written
    assert chart.read_bytes().startswith(PNG_MAGIC)
    assert dict(summary_rows(timeline))["run time p50"] == "-"


def test_empty_timeline_still_writes_every_file(tmp_path: pathlib.Path) -> None:
    written = write_report(Timeline(), tmp_path, settings={})
    assert [p.name for p in written] == [*CHARTS, "report.md"]
    assert all(p.is_file() for p in written)


def _span(sid: str, parent: str | None, start: int, name: str) -> dict[str, object]:
    refs = [{"refType": "CHILD_OF", "spanID": parent}] if parent else []
    return {
        "spanID": sid,
        "references": refs,
        "startTime": start,
        "duration": 1000,
        "operationName": name,
        "processID": "p1",
        "tags": [],
    }


def test_a_trace_is_drawn_each_span_under_its_parent_and_siblings_by_start(
    tmp_path: pathlib.Path,
) -> None:
    trace = {
        "traceID": "ab",
        "processes": {"p1": {"serviceName": "trimtab-worker"}},
        "spans": [
            _span("c2", "r", 30, "step b"),
            _span("r", "caller-not-in-trace", 0, "run wf"),
            _span("w", "c1", 12, "queue wait"),
            _span("c1", "r", 10, "step a"),
        ],
    }
    order = [(depth, s["operationName"]) for depth, s in trace_chart.ordered(trace)]
    assert order == [(0, "run wf"), (1, "step a"), (2, "queue wait"), (1, "step b")]
    written = trace_chart.save(trace, tmp_path)
    assert [p.name for p in written] == ["slowest-run-trace.json", "slowest-run-trace.png"]
    assert all(p.stat().st_size > 0 for p in written)


def test_the_report_links_the_slowest_runs_trace_only_when_it_was_saved(
    tmp_path: pathlib.Path,
) -> None:
    timeline = Timeline(slowest_run="demo/r1", slowest_seconds=3.5)
    write_report(timeline, tmp_path, settings={}, trace="http://jaeger/trace/ab")
    page = (tmp_path / "report.md").read_text()
    assert "slowest-run-trace.png" in page
    assert "demo/r1 took 3.50 s" in page
    write_report(timeline, tmp_path, settings={})
    assert "slowest-run-trace.png" not in (tmp_path / "report.md").read_text()
