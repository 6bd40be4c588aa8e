"""The chaos benchmark at its CI size (hack/bench/chaos.py --small): worker SIGKILLs
and SIGSTOPs, a Redis SIGKILL with AOF restart and poison messages, on real processes.
It exits 1 when a run is lost or stuck, a step completes twice or not at all, a
resubmission makes a new run, tool calls outnumber deliveries, or anything but the
poison is dead-lettered; its timing figures are printed, not asserted."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_chaos_loses_nothing_and_completes_every_step_once() -> None:
    bench = ROOT / "hack" / "bench" / "chaos.py"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "operator"), str(ROOT / "hack" / "devtools")]),
    }
    done = subprocess.run(
        [sys.executable, str(bench), "--small"],
        capture_output=True, text=True, timeout=600, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "double completions           0" in done.stdout
    assert "FAILED" not in done.stdout
