"""How a simulation reads: a table of every contender's scores, and a chart of the load
and each contender's replicas over time (PNG, with matplotlib from the `demo` extra)."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence

from trimtab.sim.fleet import compare, model, traces


def table(
    scores: Sequence[compare.Score], *, slo: float, price_per_replica_hour: float | None
) -> str:
    money = price_per_replica_hour is not None
    head = (
        f"  {'':18} {'within ' + format(slo, 'g') + ' s':>12} {'p50 s':>7} {'p95 s':>7} "
        f"{'p99 s':>7} {'replica-s':>10} {'vs static':>9} {'first wait':>10}"
        + (f" {'cost':>9}" if money else "")
    )
    lines = [head]
    for s in scores:
        line = (
            f"  {s.name:18} {s.within_slo * 100:11.2f}% {s.p50:7.2f} {s.p95:7.2f} {s.p99:7.2f} "
            f"{s.replica_seconds:10.0f} {s.cost_ratio:8.2f}x {s.first_wait:9.1f}s"
        )
        if price_per_replica_hour is not None:
            line += f" {s.replica_seconds / 3600 * price_per_replica_hour:9.2f}"
        lines.append(line)
    return "\n".join(lines)


def describe(trace: traces.Trace, pool: model.PoolModel, static_size: int) -> str:
    return (
        f"{trace.name}: {len(trace.arrivals)} arrivals over {trace.duration:.0f} s "
        f"(mean {trace.mean_rate:.2f}/s, peak {trace.peak_rate():.1f}/s over 10 s); "
        f"{pool.slots} slots per replica, steps {pool.service_mean:g} s (CV "
        f"{pool.service_cv:g}), start-up {pool.startup_seconds:g} s; "
        f"static fleet {static_size} replicas"
    )


class ChartUnavailableError(RuntimeError):
    """matplotlib is not installed."""


def chart(
    path: pathlib.Path,
    trace: traces.Trace,
    outcomes: Mapping[str, model.Outcome],
    *,
    title: str,
) -> None:
    """Arrivals per second (10 s bins) above, each contender's replicas below."""
    try:
        import matplotlib  # noqa: PLC0415 - an optional extra, loaded only for a chart

        matplotlib.use("Agg")
        from matplotlib import pyplot  # noqa: PLC0415
    except ImportError as exc:
        raise ChartUnavailableError(
            "--chart needs matplotlib: pip install 'trimtab[demo]'"
        ) from exc
    figure, (load, fleet) = pyplot.subplots(2, 1, sharex=True, figsize=(10, 6))
    bins = [0] * (int(trace.duration // 10) + 1)
    for t in trace.arrivals:
        bins[int(t // 10)] += 1
    load.plot([10 * i for i in range(len(bins))], [b / 10 for b in bins], color="black")
    load.set_ylabel("arrivals/s")
    load.set_title(title, fontsize=10)
    for name, outcome in outcomes.items():
        times = [t for t, _, _ in outcome.replicas_over_time]
        fleet.step(times, [d for _, d, _ in outcome.replicas_over_time], where="post", label=name)
    fleet.set_ylabel("replicas")
    fleet.set_xlabel("seconds")
    fleet.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
