"""Pure pieces of the local control plane: command lines, nodes, PKI, pid files."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
import yaml

from trimtab import cli
from trimtab_dev.devcluster import components, kubeconfig, layout, nodes, pki, processes

BIN = pathlib.Path("/opt/k8s")


@pytest.fixture
def lay(tmp_path: pathlib.Path) -> layout.Layout:
    return layout.Layout(name="t", root=tmp_path / "t")


def test_every_component_listens_on_loopback_only(lay: layout.Layout) -> None:
    for comp in components.all_components(lay, bin_dir=BIN):
        flags = [a.split("=", 1) for a in comp.argv[1:] if "=" in a]
        listen = [
            value
            for flag, value in flags
            if flag in ("--bind-address", "--server-address") or flag.startswith("--listen-")
        ]
        assert listen, comp.name
        assert all("127.0.0.1" in a for a in listen), (comp.name, listen)


def test_components_start_in_dependency_order(lay: layout.Layout) -> None:
    names = [c.name for c in components.all_components(lay, bin_dir=BIN)]
    assert names == ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]


def test_ports_are_distinct() -> None:
    ports = vars(layout.Ports())
    assert len(set(ports.values())) == len(ports)


@pytest.mark.parametrize("component", ["kube-controller-manager", "kube-scheduler"])
def test_single_instance_components_skip_leader_election(
    lay: layout.Layout, component: str
) -> None:
    comp = next(c for c in components.all_components(lay, bin_dir=BIN) if c.name == component)
    assert "--leader-elect=false" in comp.argv


def test_apiserver_runs_rbac_with_service_account_signing(lay: layout.Layout) -> None:
    argv = components.kube_apiserver(lay, bin_dir=BIN).argv
    assert "--authorization-mode=Node,RBAC" in argv
    assert f"--service-account-signing-key-file={lay.pki / 'sa.key'}" in argv
    assert f"--etcd-servers={lay.etcd_url}" in argv


def test_kwok_stages_cover_node_and_pod_lifecycles() -> None:
    docs = list(yaml.safe_load_all(components.kwok_stages_path().read_text()))
    names = {d["metadata"]["name"] for d in docs if d}
    assert names == {
        "node-initialize",
        "node-heartbeat-with-lease",
        "pod-ready",
        "pod-complete",
        "pod-delete",
    }


@pytest.mark.parametrize(
    ("capacity", "tainted"),
    [
        pytest.param("spot", True, id="spot-is-tainted"),
        pytest.param("on-demand", False, id="on-demand-is-open"),
    ],
)
def test_node_manifest_capacity(capacity: str, tainted: bool) -> None:
    node = nodes.node_manifest("n1", capacity=capacity, zone="local-a")
    assert node["metadata"]["labels"][nodes.CAPACITY_LABEL] == capacity
    assert node["metadata"]["labels"][nodes.ZONE_LABEL] == "local-a"
    assert bool(node["spec"]["taints"]) is tainted
    annotations = node["metadata"]["annotations"]
    assert annotations[components.KWOK_NODE_ANNOTATION] == components.KWOK_NODE_ANNOTATION_VALUE
    assert node["status"]["allocatable"]["pods"] == "110"


@pytest.mark.parametrize(("spot", "on_demand"), [(2, 1), (0, 3), (4, 0)])
def test_default_nodes_counts_and_zone_spread(spot: int, on_demand: int) -> None:
    fleet = nodes.default_nodes(spot=spot, on_demand=on_demand)
    caps = [n["metadata"]["labels"][nodes.CAPACITY_LABEL] for n in fleet]
    assert caps.count("spot") == spot
    assert caps.count("on-demand") == on_demand
    assert len({n["metadata"]["name"] for n in fleet}) == len(fleet)
    if spot >= 2:
        spot_zones = {
            n["metadata"]["labels"][nodes.ZONE_LABEL]
            for n in fleet
            if n["metadata"]["labels"][nodes.CAPACITY_LABEL] == "spot"
        }
        assert spot_zones == set(nodes.ZONES)


def test_apiserver_certificate_names_loopback_and_service_ip() -> None:
    sans = pki.apiserver_sans("198.51.100.1")
    assert "IP:127.0.0.1" in sans
    assert "IP:198.51.100.1" in sans
    assert "IP:10.96.0.1" in sans
    assert "DNS:kubernetes.default.svc.cluster.local" in sans


def test_pki_is_valid_and_kept_on_rerun(tmp_path: pathlib.Path) -> None:
    node = pki.node_serving("n", "198.51.100.2")
    clients = (*pki.CLIENTS, pki.node_client("n"))
    pki.ensure_pki(tmp_path, host_address="198.51.100.1", clients=clients, servers=(node,))
    for stem in ["apiserver", node.stem, *(c.stem for c in clients)]:
        verified = subprocess.run(
            [
                "openssl",
                "verify",
                "-CAfile",
                str(tmp_path / "ca.crt"),
                str(tmp_path / f"{stem}.crt"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert verified.returncode == 0, verified.stderr
    subject = subprocess.run(
        ["openssl", "x509", "-noout", "-subject", "-in", str(tmp_path / "admin.crt")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "system:masters" in subject
    before = (tmp_path / "ca.crt").read_bytes()
    serving = (tmp_path / "apiserver.crt").read_bytes()
    pki.ensure_pki(tmp_path, host_address="198.51.100.1")
    assert (tmp_path / "ca.crt").read_bytes() == before
    assert (tmp_path / "apiserver.crt").read_bytes() == serving
    pki.ensure_pki(tmp_path, host_address="198.51.100.17")  # another address: reissued
    assert (tmp_path / "apiserver.crt").read_bytes() != serving


def test_kubeconfig_points_at_files_and_sets_context(tmp_path: pathlib.Path) -> None:
    doc = kubeconfig.kubeconfig(
        server="https://127.0.0.1:1",
        ca=tmp_path / "ca.crt",
        cert=tmp_path / "a.crt",
        key=tmp_path / "a.key",
        cluster_name="c",
    )
    assert doc["current-context"] == "c"
    assert doc["users"][0]["user"]["client-key"] == str(tmp_path / "a.key")
    assert doc["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:1"


def test_state_root_follows_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setenv("TRIMTAB_CLUSTER_DIR", str(tmp_path))
    assert layout.layout_for("x").root == tmp_path / "x"


def test_processes_start_and_stop_exactly_what_they_started(tmp_path: pathlib.Path) -> None:
    comp = components.Component(
        name="sleeper",
        argv=(sys.executable, "-c", "import time; time.sleep(60)"),
        binary=sys.executable,
    )
    pid = processes.start(comp, pids=tmp_path / "pids", logs=tmp_path / "logs")
    assert processes.running_pid(tmp_path / "pids", comp) == pid
    assert processes.rss_bytes(pid) > 0
    assert processes.stop(comp, pids=tmp_path / "pids", timeout=5)
    assert processes.running_pid(tmp_path / "pids", comp) is None
    assert not processes.stop(comp, pids=tmp_path / "pids")


def test_a_pid_file_naming_another_program_is_not_ours(tmp_path: pathlib.Path) -> None:
    other = subprocess.Popen(["sleep", "30"])
    try:
        comp = components.Component(name="etcd", argv=("/opt/etcd",), binary="/opt/etcd")
        pids = tmp_path / "pids"
        pids.mkdir()
        processes.pid_file(pids, "etcd").write_text(str(other.pid))
        assert processes.running_pid(pids, comp) is None
        assert not processes.stop(comp, pids=pids)
        assert other.poll() is None, "stop must never signal a process it did not start"
    finally:
        other.kill()
        other.wait()


def test_cli_parses_cluster_commands() -> None:
    args = cli.build_parser().parse_args(["cluster", "--name", "dev", "up", "--spot-nodes", "3"])
    assert (args.name, args.action, args.spot_nodes, args.on_demand_nodes) == ("dev", "up", 3, 1)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["cluster", "sideways"])
