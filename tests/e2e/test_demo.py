"""The README's main job, in its short version: `trimtab demo` for 30 s of bursty load
on the real local control plane, with the real operator, workers, Redis and simulator."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import uuid
from typing import Any

import pytest

PNG = b"\x89PNG\r\n\x1a\n"
CHARTS = ("queue_depth.png", "replicas.png", "p95.png", "run_latency.png", "cost.png")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, cluster: object) -> dict[str, Any]:
    """One short demo run; its summary.json."""
    report = tmp_path_factory.mktemp("demo") / "report"
    namespace = f"demo-{uuid.uuid4().hex[:6]}"
    argv = [
        sys.executable,
        "-m",
        "trimtab",
        "demo",
        "--duration",
        "30",
        "--rate",
        "3",
        "--period",
        "20",
        "--burst",
        "1.5",
        "--no-ui",
        "--seed",
        "3",
        "--report-dir",
        str(report),
        "--namespace",
        namespace,
        "--scale-down-seconds",
        "5",
        "--idle-seconds-to-zero",
        "8",
    ]
    done = subprocess.run(
        argv, check=False, capture_output=True, text=True, timeout=600, env=dict(os.environ)
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    summary: dict[str, Any] = json.loads((report / "summary.json").read_text())
    summary["dir"] = str(report)
    return summary


def test_no_run_was_lost_and_each_ended_in_a_defined_state(demo: dict[str, Any]) -> None:
    assert demo["unfinished"] == 0
    assert demo["missing"] == 0
    assert demo["submitted"] > 50
    assert demo["succeeded"] + demo["review"] + demo["dead_lettered"] == demo["submitted"]
    assert demo["succeeded"] > 0


def test_pools_scaled_up_during_the_burst_and_back_down_after(demo: dict[str, Any]) -> None:
    peak = demo["peak_replicas"]
    final = demo["final_replicas"]
    minimum = demo["min_replicas"]
    assert any(peak[p] > minimum[p] for p in minimum), (peak, minimum)
    assert all(final[p] <= minimum[p] for p in minimum), (final, minimum)


def test_the_report_and_its_charts_were_written(demo: dict[str, Any]) -> None:
    folder = pathlib.Path(demo["dir"])
    text = (folder / "report.md").read_text()
    for chart in CHARTS:
        assert (folder / chart).read_bytes().startswith(PNG)
        assert f"({chart})" in text
    assert "## Same load, other autoscalers" in text  # each pool's arrivals replayed


def test_the_support_pools_ran_as_real_pods_and_the_batch_pool_on_kwok(
    demo: dict[str, Any],
) -> None:
    """The session cluster has a real node (`trimtab cluster up` starts one): the support
    pools' workers ran there as containers; the spot batch pool stayed on kwok's nodes."""
    real = demo["peak_real_node_pods"]
    assert real["support-small"] >= 1, real
    assert real["batch-summarize"] == 0, real
