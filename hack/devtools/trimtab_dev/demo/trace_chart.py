"""The slowest run's trace, as the demo's report shows it: read from Jaeger's query
API once the operator has recorded the run's span, kept as JSON beside the report, and
drawn as a waterfall (one bar per span, indented under its parent, coloured by the
process that recorded it), which is what Jaeger's own trace view shows."""

from __future__ import annotations

import json
import pathlib
import time
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from trimtab.telemetry import ids
from trimtab_dev import jaeger as jaeger_mod

WAIT_SECONDS = 15.0  # the operator's pass (1 s) and the batched export (OTEL_BSP_*)
COLOURS = {"trimtab-operator": "#4c72b0", "trimtab-worker": "#dd8452"}


def _parent(span: dict[str, Any]) -> str | None:
    refs = [r for r in span.get("references", []) if r.get("refType") == "CHILD_OF"]
    return refs[0]["spanID"] if refs else None


def ordered(trace: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """(depth, span) in tree order: each span after its parent, siblings by start."""
    spans = trace["spans"]
    known = {s["spanID"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for s in spans:
        parent = _parent(s)
        children.setdefault(parent if parent in known else None, []).append(s)
    out: list[tuple[int, dict[str, Any]]] = []

    def walk(parent: str | None, depth: int) -> None:
        for s in sorted(children.get(parent, []), key=lambda x: x["startTime"]):
            out.append((depth, s))
            walk(s["spanID"], depth + 1)

    walk(None, 0)
    return out


def draw(fig: Figure, trace: dict[str, Any]) -> None:
    rows = ordered(trace)
    start = min(s["startTime"] for _, s in rows)
    services = {p: v["serviceName"] for p, v in trace["processes"].items()}
    ax = fig.add_subplot()
    for i, (depth, s) in enumerate(rows):
        left, width = (s["startTime"] - start) / 1000, max(s["duration"] / 1000, 0.5)
        colour = COLOURS.get(services.get(s["processID"], ""), "#55a868")
        failed = any(t["key"] == "otel.status_code" and t["value"] == "ERROR" for t in s["tags"])
        ax.barh(i, width, left=left, color=colour, edgecolor="#c44e52" if failed else colour)
        label = "  " * depth + s["operationName"]
        ax.text(
            left + width, i, f" {label} ({s['duration'] / 1000:.0f} ms)", va="center", fontsize=7
        )
    ax.invert_yaxis()
    ax.set_yticks([])
    ax.set_xlabel("ms since the run was submitted")
    ax.set_title("The slowest run's trace (operator: blue, workers: orange, red edge: failed)")


def fetch(jaeger: jaeger_mod.Jaeger, run: str) -> dict[str, Any] | None:
    """The run's trace once its own span has arrived; None if it did not in time."""
    namespace, run_id = run.split("/", 1)
    trace_id = ids.run_trace(namespace, run_id).trace_id
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found = jaeger.trace(trace_id)
        if found and any(s["operationName"].startswith("run ") for s in found["spans"]):
            return found
        time.sleep(0.5)
    return None


def save(trace: dict[str, Any], out_dir: pathlib.Path) -> list[pathlib.Path]:
    """The trace's JSON and its waterfall, beside the report."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - after the backend is chosen

    out_dir.mkdir(parents=True, exist_ok=True)
    data = out_dir / "slowest-run-trace.json"
    data.write_text(json.dumps(trace, indent=1))
    fig = plt.figure(figsize=(10.0, 0.3 * len(trace["spans"]) + 1.5), dpi=100, layout="constrained")
    try:
        draw(fig, trace)
        fig.savefig(out_dir / "slowest-run-trace.png")
    finally:
        plt.close(fig)
    return [data, out_dir / "slowest-run-trace.png"]
