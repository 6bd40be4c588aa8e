"""`trimtab cluster` as a developer uses it, against the running test cluster."""

from __future__ import annotations

import subprocess
import sys

from tests.harness import cluster as cluster_harness
from trimtab_dev.devcluster import layout, realnodes


def _trimtab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trimtab", "cluster", "--name", cluster_harness.CLUSTER_NAME, *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_up_again_is_harmless_and_starts_nothing(cluster: layout.Layout) -> None:
    result = _trimtab("up", "--real-nodes", str(cluster.real_nodes))
    assert result.returncode == 0, result.stderr
    assert "started: nothing (already up)" in result.stdout
    assert f"export KUBECONFIG={cluster.kubeconfig}" in result.stdout


def test_status_reports_every_process_healthy(cluster: layout.Layout) -> None:
    result = _trimtab("status")
    assert result.returncode == 0, result.stdout
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    nodes = [
        f"{process}.{node.name}"
        for node in realnodes.real_nodes(cluster.real_nodes)
        for process in ("containerd", "kubelet", "kube-proxy")
    ]
    assert set(rows) == {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
        *nodes,
    }
    assert all(row[2] == "True" and float(row[3]) > 0 for row in rows.values())


def test_env_prints_the_kubeconfig_and_host_address_exports(cluster: layout.Layout) -> None:
    result = _trimtab("env")
    expected = [f"export KUBECONFIG={cluster.kubeconfig}"]
    if cluster.real_nodes:
        expected.append(f"export TRIMTAB_HOST_ADDRESS={cluster.network.host_address}")
    assert result.stdout.splitlines() == expected


def test_env_of_an_unknown_cluster_is_a_clear_error(cluster: layout.Layout) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trimtab", "cluster", "--name", "never-created", "env"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "run `trimtab cluster up`" in result.stderr
