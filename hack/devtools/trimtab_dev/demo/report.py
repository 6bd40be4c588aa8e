"""The report a newcomer reads after `trimtab demo`: a summary table, five charts and a
Markdown page that ties them together.

This module owns turning a recorded `Timeline` into files on disk and nothing else: it
does no I/O against the cluster and holds no state, so the same timeline always gives the
same summary. The charts show what the demo is for: queues filling under bursty load,
pools scaling out and back in on Spot or OnDemand capacity, latency staying bounded, and
what that elasticity saved against a fixed-size deployment.

Percentiles use the nearest-rank definition: the p-th percentile of n sorted values is the
value at rank ceil(p/100 * n) (1-based), so it is always one of the observed run times.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Callable, Mapping, Sequence

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from trimtab_dev.demo import whatif
from trimtab_dev.demo.timeline import (
    ON_DEMAND_PER_REPLICA_HOUR,
    SPOT_PER_REPLICA_HOUR,
    PoolSample,
    Timeline,
    capacity_cost,
)

FIGSIZE = (8.0, 4.0)  # inches
DPI = 100

Draw = Callable[[Figure, Timeline], None]


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of `values` (0 < p <= 100); None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _by_pool(timeline: Timeline) -> dict[str, list[PoolSample]]:
    pools: dict[str, list[PoolSample]] = {name: [] for name in timeline.pool_names()}
    for sample in sorted(timeline.pools, key=lambda s: (s.pool, s.t)):
        pools[sample.pool].append(sample)
    return pools


def summary_rows(timeline: Timeline) -> list[tuple[str, str]]:
    """The end-of-demo summary as (label, value) rows; counts come from the last sample."""
    last = timeline.runs[-1] if timeline.runs else None
    submitted = last.submitted if last else 0
    succeeded = last.succeeded if last else 0
    failed = last.failed if last else 0
    review = last.review if last else 0
    running = max(0, submitted - succeeded - failed - review)
    cost = capacity_cost(timeline)
    rows = [
        ("runs submitted", str(submitted)),
        ("runs succeeded", str(succeeded)),
        ("runs in review", str(review)),
        ("runs dead-lettered or failed", str(failed)),
        ("runs still running", str(running)),
        ("run time p50", _seconds(percentile(timeline.run_seconds, 50))),
        ("run time p95", _seconds(percentile(timeline.run_seconds, 95))),
        ("tokens", str(last.tokens if last else 0)),
        ("model cost", f"${last.cost if last else 0.0:.4f}"),
    ]
    for name, samples in _by_pool(timeline).items():
        peak = max(s.desired for s in samples)
        rows.append((f"pool {name}", f"peak {peak} replicas"))
    rows.append(
        ("node cost", f"${cost.actual:.4f} run vs ${cost.peak_on_demand:.4f} peak on-demand")
    )
    rows.append(("node cost saving", f"{cost.saving:.0%}"))
    return rows


def _legend(ax: Axes) -> None:
    if ax.get_legend_handles_labels()[0]:  # no pools, no legend (and no warning)
        ax.legend(loc="best")


def _draw_queue_depth(fig: Figure, timeline: Timeline) -> None:
    ax = fig.subplots()
    for name, samples in _by_pool(timeline).items():
        ax.plot([s.t for s in samples], [s.queue_depth for s in samples], label=name)
    ax.set(title="Queue depth per pool", xlabel="t (s)", ylabel="queued runs")
    _legend(ax)


def _draw_replicas(fig: Figure, timeline: Timeline) -> None:
    ax = fig.subplots()
    for name, samples in _by_pool(timeline).items():
        t = [s.t for s in samples]
        capacity = samples[-1].capacity
        (line,) = ax.plot(t, [s.desired for s in samples], label=f"{name} desired ({capacity})")
        ax.plot(
            t,
            [s.ready for s in samples],
            linestyle="--",
            color=line.get_color(),
            label=f"{name} ready ({capacity})",
        )
    ax.set(title="Desired (solid) and ready (dashed) replicas", xlabel="t (s)", ylabel="replicas")
    _legend(ax)


def _draw_p95(fig: Figure, timeline: Timeline) -> None:
    ax = fig.subplots()
    for name, samples in _by_pool(timeline).items():
        points = [(s.t, s.p95_seconds) for s in samples if s.p95_seconds is not None]
        ax.plot([t for t, _ in points], [p for _, p in points], marker=".", label=name)
    ax.set(title="p95 latency per pool", xlabel="t (s)", ylabel="seconds")
    _legend(ax)


def _draw_run_latency(fig: Figure, timeline: Timeline) -> None:
    ax = fig.subplots()
    ax.set(title="Run time of succeeded runs", xlabel="seconds", ylabel="runs")
    if timeline.run_seconds:
        ax.hist(timeline.run_seconds, bins=20)
    else:
        ax.text(0.5, 0.5, "no completed runs", ha="center", va="center", transform=ax.transAxes)


def _draw_cost(fig: Figure, timeline: Timeline) -> None:
    model_ax, node_ax = fig.subplots(1, 2)
    pools = sorted(timeline.model_cost_by_pool)
    model_ax.bar(pools, [timeline.model_cost_by_pool[p] for p in pools], color="tab:purple")
    model_ax.set(title="Model cost by pool", ylabel="USD")
    model_ax.tick_params(axis="x", labelrotation=20)  # pool names are long
    cost = capacity_cost(timeline)
    node_ax.bar(
        ["spot", "on-demand", "peak on-demand\nall the time"],
        [
            cost.spot_replica_hours * SPOT_PER_REPLICA_HOUR,
            cost.on_demand_replica_hours * ON_DEMAND_PER_REPLICA_HOUR,
            cost.peak_on_demand,
        ],
        color=["tab:green", "tab:blue", "tab:gray"],
    )
    node_ax.set(title="Node cost by capacity type", ylabel="USD")


# File name, how it is drawn, and the sentence the report says about it.
CHARTS: tuple[tuple[str, Draw, str], ...] = (
    ("queue_depth.png", _draw_queue_depth, "Runs waiting in each pool's queue over time."),
    (
        "replicas.png",
        _draw_replicas,
        "Replicas each pool asked for (solid) and had ready (dashed); "
        "the legend says whether the pool ended on Spot or OnDemand nodes.",
    ),
    ("p95.png", _draw_p95, "The p95 latency each pool reported over time."),
    ("run_latency.png", _draw_run_latency, "How long succeeded runs took, end to end."),
    (
        "cost.png",
        _draw_cost,
        "Model cost by pool, and node cost by capacity type against keeping every pool's "
        "peak replica count on on-demand nodes the whole time.",
    ),
)


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: tuple[str, str], rows: Sequence[tuple[object, object]]) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "| --- | --- |"]
    lines += [f"| {_cell(label)} | {_cell(value)} |" for label, value in rows]
    return lines


def render_markdown(timeline: Timeline, settings: Mapping[str, object], trace: str = "") -> str:
    """The report page: settings, summary, cost, the charts with one line each, and the
    slowest run's trace when `trace` (its Jaeger URL) says it was saved."""
    cost = capacity_cost(timeline)
    lines = ["# Trimtab demo report", "", "## Settings", ""]
    lines += _table(("setting", "value"), list(settings.items()))
    lines += ["", "## Summary", ""]
    lines += _table(("measure", "value"), summary_rows(timeline))
    lines += [
        "",
        "## Cost",
        "",
        f"The pools' nodes cost ${cost.actual:.4f} as the demo ran "
        f"({cost.spot_replica_hours:.4f} Spot and {cost.on_demand_replica_hours:.4f} OnDemand "
        f"replica-hours), against ${cost.peak_on_demand:.4f} for holding each pool's peak "
        f"replica count on on-demand nodes the whole time: a saving of {cost.saving:.0%}.",
        "",
        "## Charts",
    ]
    for name, _, sentence in CHARTS:
        lines += ["", f"![{name.removesuffix('.png')}]({name})", "", sentence]
    if trace:
        lines += [
            "",
            "## The slowest run's trace",
            "",
            f"Run {timeline.slowest_run} took {timeline.slowest_seconds:.2f} s. Its trace, as "
            f"the operator and the workers sent it to Jaeger ({trace} while the demo runs; "
            "the spans are kept in slowest-run-trace.json):",
            "",
            "![slowest run's trace](slowest-run-trace.png)",
        ]
    if timeline.recorded_arrivals:
        lines += ["", *whatif.section(timeline)]
    return "\n".join(lines) + "\n"


def write_report(
    timeline: Timeline,
    out_dir: pathlib.Path,
    *,
    settings: Mapping[str, object],
    trace: str = "",
) -> list[pathlib.Path]:
    """Write the charts and report.md into `out_dir`; return the paths written."""
    matplotlib.use("Agg")  # files only, never a window; before pyplot picks a backend
    import matplotlib.pyplot as plt  # noqa: PLC0415

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[pathlib.Path] = []
    for name, draw, _ in CHARTS:
        fig = plt.figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
        try:
            draw(fig, timeline)
            fig.savefig(out_dir / name)
        finally:
            plt.close(fig)
        written.append(out_dir / name)
    report = out_dir / "report.md"
    report.write_text(render_markdown(timeline, settings, trace), encoding="utf-8")
    written.append(report)
    return written
