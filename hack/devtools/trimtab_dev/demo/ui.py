"""The live terminal view (rich), or one log line every few seconds with --no-ui."""

from __future__ import annotations

from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from trimtab_dev.demo import timeline as tl


def _p95(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def pools_table(pools: list[tl.PoolSample]) -> Table:
    table = Table(title="pools", expand=True)
    for column in (
        "pool",
        "capacity",
        "replicas ready/desired",
        "queue",
        "in flight",
        "p95",
        "breaker",
    ):
        table.add_column(column, justify="left" if column == "pool" else "right")
    for s in pools:
        breaker = Text(s.breaker, style="red" if s.breaker != "Closed" else "green")
        table.add_row(
            s.pool,
            s.capacity,
            f"{s.ready}/{s.desired}",
            str(s.queue_depth),
            str(s.in_flight),
            _p95(s.p95_seconds),
            breaker,
        )
    return table


def runs_table(runs: tl.RunsSample) -> Table:
    table = Table(title="runs", expand=True)
    for column in ("submitted", "succeeded", "in review", "dead-lettered", "tokens", "model cost"):
        table.add_column(column, justify="right")
    table.add_row(
        str(runs.submitted),
        str(runs.succeeded),
        str(runs.review),
        str(runs.failed),
        f"{runs.tokens:,}",
        f"${runs.cost:.4f}",
    )
    return table


def view(
    pools: list[tl.PoolSample], runs: tl.RunsSample, *, phase: str, done: float, total: float
) -> Group:
    bar = ProgressBar(total=max(total, 1.0), completed=min(done, total), width=50)
    head = Text(f"{phase}: {done:5.0f} / {total:.0f} s  ")
    return Group(Group(head, bar), pools_table(pools), runs_table(runs))


def line(pools: list[tl.PoolSample], runs: tl.RunsSample, *, phase: str, done: float) -> str:
    per_pool = ", ".join(f"{s.pool} {s.ready}/{s.desired} q={s.queue_depth}" for s in pools)
    return (
        f"[{phase} {done:5.0f} s] runs {runs.submitted} submitted, {runs.succeeded} ok, "
        f"{runs.review} review, {runs.failed} dead; {per_pool}; ${runs.cost:.4f}"
    )
