"""The console's pure parts: the step graph's layout, and the vendored htmx being the
file hack/vendor-console.sh fetched (its recorded SHA-256)."""

from __future__ import annotations

import hashlib
import importlib.resources

import pytest

from trimtab.server.console import dag

pytestmark = pytest.mark.unit


def test_steps_sit_in_their_levels_column_and_edges_join_right_to_left() -> None:
    shown = dag.layout(
        ("a", "b", "c", "d"),
        {"a": 0, "b": 0, "c": 1, "d": 2},
        {"c": ("a", "b"), "d": ("c",)},
        {"a": "done", "c": "running"},
    )
    at = {b.step: b for b in shown.boxes}
    assert at["a"].x == at["b"].x < at["c"].x < at["d"].x
    assert at["a"].y < at["b"].y
    assert (at["a"].state, at["b"].state, at["c"].state) == ("done", "pending", "running")
    assert [(e.source, e.target) for e in shown.edges] == [("a", "c"), ("b", "c"), ("c", "d")]
    join = shown.edges[0]
    assert (join.x1, join.x2) == (at["a"].x + dag.BOX_W, at["c"].x)
    assert shown.width == at["d"].x + dag.BOX_W + dag.MARGIN
    assert shown.height == at["b"].y + dag.BOX_H + dag.MARGIN


def test_a_single_step_fits_one_box() -> None:
    shown = dag.layout(("only",), {"only": 0}, {}, {})
    assert (shown.width, shown.height) == (dag.BOX_W + 2 * dag.MARGIN, dag.BOX_H + 2 * dag.MARGIN)
    assert shown.edges == []


def test_the_vendored_htmx_is_the_recorded_file() -> None:
    static = importlib.resources.files("trimtab.server.console") / "static"
    name, version, digest = (static / "VENDORED").read_text().split()
    assert name == "htmx.org"
    assert version.startswith("2.")
    assert hashlib.sha256((static / "htmx.min.js").read_bytes()).hexdigest() == digest
