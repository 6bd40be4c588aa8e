"""`trimtab simulate scaling` as a user runs it: a pool manifest and a trace in, a table
of every autoscaler's latency and cost out; bad input gets one line and exit code 2."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
import yaml

from trimtab_dev.demo import whatif
from trimtab_dev.demo.timeline import PoolSample, Timeline

pytestmark = pytest.mark.unit
POOL = {
    "apiVersion": "trimtab.io/v1alpha1",
    "kind": "AgentPool",
    "metadata": {"name": "support"},
    "spec": {
        "model": {"endpoint": "http://m.local:8000/v1", "name": "m"},
        "worker": {"concurrency": 4},
        "scaling": {"maxReplicas": 50, "standby": 2},
    },
}


def simulate(tmp_path: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    pool = tmp_path / "pool.yaml"
    pool.write_text(yaml.safe_dump(POOL))
    return subprocess.run(
        [sys.executable, "-m", "trimtab", "simulate", "scaling", "-f", str(pool), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_a_shape_prints_every_contender(tmp_path: pathlib.Path) -> None:
    out = simulate(tmp_path, "--trace", "steady:rate=3,duration=300", "--export-trace",
                   str(tmp_path / "t.csv"), "--price-per-replica-hour", "0.1")  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    names = [line.split()[0] for line in lines[2:7]]
    assert names == ["Trimtab", "KEDA", "KEDA", "HPA", "static"]
    assert "steady 3/s" in lines[0]
    assert (tmp_path / "t.csv").read_text().startswith("arrival_seconds\n")


def test_a_csv_trace_replays(tmp_path: pathlib.Path) -> None:
    (tmp_path / "arrivals.csv").write_text("t\n" + "".join(f"{i * 0.5}\n" for i in range(200)))
    out = simulate(tmp_path, "--trace", str(tmp_path / "arrivals.csv"), "--startup", "5")
    assert out.returncode == 0, out.stderr
    assert "200 arrivals" in out.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param(("--trace", "wave"), "unknown shape 'wave'", id="shape"),
        pytest.param(("--trace", "steady", "--startup", "0"), "--startup must be above 0",
                     id="startup"),
        pytest.param(("--from-pool", "nopool"), "--from-pool takes NAMESPACE/NAME", id="ref"),
        pytest.param(("--from-pool", "a/b", "--since", "soon"), "--since takes a duration",
                     id="since"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line(tmp_path: pathlib.Path, args: tuple[str, ...], words: str) -> None:
    out = simulate(tmp_path, *args)
    assert out.returncode == 2
    assert words in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_the_demo_report_replays_each_pool() -> None:
    samples = [
        PoolSample(float(t), "support", "OnDemand", 1, 1, 0, 0, None, "Closed", 0.8)
        for t in range(60)
    ]
    timeline = Timeline(
        pools=samples,
        recorded_arrivals={"support": {1_700_000_000 + s: 3 for s in range(60)}},
        pool_specs={"support": POOL["spec"]},
    )
    lines = whatif.section(timeline)
    assert lines[0] == "## Same load, other autoscalers"
    assert any(line.startswith("**support**: 180 steps, 0.80 s each") for line in lines)
    assert sum(1 for line in lines if line.startswith("| ") and "x |" in line) == 5
