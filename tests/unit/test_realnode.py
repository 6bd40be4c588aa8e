"""Pure pieces of the real nodes: addresses, node shapes, configs, command lines, images,
the host-change record and its parsing helpers. No tool runs here."""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import pathlib
import tarfile
import tomllib

import pytest

from trimtab import cli
from trimtab_dev.devcluster import (
    addresses,
    components,
    host,
    hostrecord,
    hostundo,
    images,
    nodecomponents,
    nodeconfig,
    pki,
    realnodes,
)
from trimtab_dev.devcluster import layout as layout_mod

pytestmark = pytest.mark.unit

BIN = pathlib.Path("/opt/k8s")
TOOLS = nodecomponents.HostTools(
    nsenter="/usr/bin/nsenter",
    containerd="/usr/bin/containerd",
    runc="/usr/sbin/runc",
    ctr="/usr/bin/ctr",
    ip="/usr/sbin/ip",
)
ALL_SLOTS = range(addresses.SLOTS)


def _lay(tmp_path: pathlib.Path, *, real_nodes: int = 1, slot: int = 3) -> layout_mod.Layout:
    return layout_mod.Layout(
        name="rn",
        root=tmp_path / "rn",
        ports=layout_mod.Ports.for_slot(slot),
        slot=slot,
        real_nodes=real_nodes,
    )


# --- addresses and ports -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("trimtab", 0, id="default-is-slot-0"),
        pytest.param(
            "realnode", addresses.slot_for("realnode", default_name="trimtab"), id="stable"
        ),
    ],
)
def test_slot_for(name: str, expected: int) -> None:
    assert addresses.slot_for(name, default_name="trimtab") == expected


@pytest.mark.parametrize("name", ["realnode", "bench", "rn-test", "x", "a-much-longer-name"])
def test_other_names_never_take_the_default_slot(name: str) -> None:
    assert 1 <= addresses.slot_for(name, default_name="trimtab") < addresses.SLOTS


def test_slot_networks_are_disjoint_test_net_ranges() -> None:
    nets = [addresses.Network(s) for s in ALL_SLOTS]
    subnets = [n.subnet for n in nets]
    assert all(s.subnet_of(addresses.NODE_NET) for s in subnets)
    assert not any(a.overlaps(b) for i, a in enumerate(subnets) for b in subnets[i + 1 :])
    pod = [ipaddress.ip_network(n.cluster_cidr) for n in nets]
    others = [ipaddress.ip_network(c) for c in (addresses.KWOK_CIDR, addresses.SERVICE_CIDR)]
    assert not any(a.overlaps(b) for i, a in enumerate(pod) for b in [*pod[i + 1 :], *others])


@pytest.mark.parametrize("slot", [0, 7, 15])
def test_host_and_node_addresses_sit_in_the_slot_subnet(slot: int) -> None:
    net = addresses.Network(slot)
    addrs = [net.host_address, *(net.node_address(i) for i in range(net.max_nodes))]
    assert len(set(addrs)) == len(addrs) == 14
    assert all(ipaddress.ip_address(a) in net.subnet for a in addrs)
    with pytest.raises(ValueError, match="outside"):
        net.node_address(net.max_nodes)


def test_interface_names_fit_the_kernel_limit() -> None:
    for slot in ALL_SLOTS:
        net = addresses.Network(slot)
        names = [net.bridge, *(net.veth(i) for i in range(net.max_nodes))]
        assert all(len(n) <= 15 for n in names), names
        assert len(set(names)) == len(names)


def test_ports_never_collide_across_slots_and_stay_below_ephemeral_range() -> None:
    ports = [p for s in ALL_SLOTS for p in vars(layout_mod.Ports.for_slot(s)).values()]
    assert len(set(ports)) == len(ports)
    assert max(ports) < 32768
    assert layout_mod.Ports.for_slot(0) == layout_mod.Ports()


# --- layout ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("real_nodes", "address"),
    [
        pytest.param(0, "127.0.0.1", id="kwok-only-stays-on-loopback"),
        pytest.param(1, "198.51.100.49", id="real-nodes-move-to-the-bridge"),
    ],
)
def test_apiserver_address_follows_real_nodes(
    tmp_path: pathlib.Path, real_nodes: int, address: str
) -> None:
    lay = _lay(tmp_path, real_nodes=real_nodes)
    assert lay.apiserver_address == address
    assert lay.server_url == f"https://{address}:{lay.ports.apiserver}"
    assert lay.host_address == (address if real_nodes else None)


def test_recorded_real_nodes(tmp_path: pathlib.Path) -> None:
    assert layout_mod.recorded_real_nodes(tmp_path) is None
    assert layout_mod.Layout(name="x", root=tmp_path).real_nodes == 0
    (tmp_path / "cluster.json").write_text(json.dumps({"real_nodes": 2}))
    assert layout_mod.recorded_real_nodes(tmp_path) == 2


def test_node_paths_stay_under_the_node_dir_and_sockets_fit() -> None:
    home = pathlib.Path("/home/someone/.local/state/trimtab/clusters/trimtab")
    lay = layout_mod.Layout(name="trimtab", root=home)
    paths = lay.node("real-on-demand-0")
    for value in vars(paths).values():
        assert value == paths.root or paths.root in value.parents
    assert len(f"{paths.containerd_sock}.ttrpc") < 108


# --- node shapes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "names"),
    [
        pytest.param(0, [], id="none"),
        pytest.param(1, ["real-on-demand-0"], id="one-on-demand"),
        pytest.param(2, ["real-on-demand-0", "real-spot-0"], id="then-spot"),
        pytest.param(3, ["real-on-demand-0", "real-spot-0", "real-on-demand-1"], id="alternate"),
    ],
)
def test_real_nodes_names(count: int, names: list[str]) -> None:
    nodes = realnodes.real_nodes(count)
    assert [n.name for n in nodes] == names
    assert [n.index for n in nodes] == list(range(count))


@pytest.mark.parametrize(
    ("index", "capacity", "taint_keys"),
    [
        pytest.param(0, "on-demand", {"trimtab.io/real-node"}, id="on-demand"),
        pytest.param(1, "spot", {"trimtab.io/real-node", "trimtab.io/spot"}, id="spot"),
    ],
)
def test_real_node_labels_and_taints(index: int, capacity: str, taint_keys: set[str]) -> None:
    node = realnodes.real_nodes(2)[index]
    assert node.labels["karpenter.sh/capacity-type"] == capacity
    assert node.labels["trimtab.io/real-node"] == "true"
    assert node.labels["topology.kubernetes.io/zone"] == "local-a"
    assert {t["key"] for t in node.taints} == taint_keys
    assert all(t["effect"] == "NoSchedule" for t in node.taints)
    assert components.KWOK_NODE_ANNOTATION not in node.labels


def test_placement_tolerates_exactly_the_node_taints() -> None:
    node = realnodes.real_nodes(2)[1]
    spec = realnodes.placement(node)
    assert {(t["key"], t["value"], t["effect"]) for t in spec["tolerations"]} == {
        (t["key"], t["value"], t["effect"]) for t in node.taints
    }
    assert spec["nodeSelector"]["kubernetes.io/hostname"] == "real-spot-0"


# --- configs ---------------------------------------------------------------------------------


def test_containerd_config_keeps_state_under_the_node_and_restricts_oom(
    tmp_path: pathlib.Path,
) -> None:
    paths = _lay(tmp_path).node("real-on-demand-0")
    doc = tomllib.loads(
        nodeconfig.containerd_toml(paths, sandbox_image="localhost/p:1", runc="/usr/sbin/runc")
    )
    cri = doc["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["sandbox_image"] == "localhost/p:1"
    runc = cri["containerd"]["runtimes"]["runc"]["options"]
    assert (runc["SystemdCgroup"], runc["BinaryName"]) == (False, "/usr/sbin/runc")
    written = [
        doc["root"],
        doc["state"],
        doc["grpc"]["address"],
        runc["Root"],
        cri["cni"]["conf_dir"],
    ]
    written.append(doc["plugins"]["io.containerd.internal.v1.opt"]["path"])
    assert all(pathlib.Path(p).is_relative_to(paths.root) for p in written)


def _kubelet(tmp_path: pathlib.Path, index: int = 0) -> dict[str, object]:
    lay = _lay(tmp_path)
    node = realnodes.real_nodes(2)[index]
    tls = nodeconfig.NodeTls(tmp_path / "ca", tmp_path / "crt", tmp_path / "key")
    paths = lay.node(node.name)
    return nodeconfig.kubelet_config(paths, node, address="198.51.100.50", cluster="rn", tls=tls)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param("failCgroupV1", False, id="cgroup-v1-host"),
        pytest.param("cgroupDriver", "cgroupfs", id="no-systemd"),
        pytest.param("cgroupRoot", "/trimtab/rn/real-on-demand-0", id="own-cgroup-subtree"),
        pytest.param("failSwapOn", False, id="swap"),
        pytest.param("makeIPTablesUtilChains", False, id="no-kubelet-chains"),
        pytest.param("imageGCHighThresholdPercent", 100, id="images-never-collected"),
        pytest.param("address", "198.51.100.50", id="apiserver-reaches-it"),
        pytest.param("healthzBindAddress", "198.51.100.50", id="probe-from-host"),
        pytest.param("readOnlyPort", 0, id="no-read-only-port"),
        pytest.param("authorization", {"mode": "Webhook"}, id="subject-access-reviews"),
    ],
)
def test_kubelet_config_settings(tmp_path: pathlib.Path, key: str, value: object) -> None:
    assert _kubelet(tmp_path)[key] == value


def test_kubelet_config_authenticates_and_writes_under_the_state_dir(
    tmp_path: pathlib.Path,
) -> None:
    cfg = _kubelet(tmp_path, index=1)
    assert cfg["authentication"] == {
        "anonymous": {"enabled": False},
        "webhook": {"enabled": True},
        "x509": {"clientCAFile": str(tmp_path / "ca")},
    }
    for key in ("podLogsDir", "volumePluginDir"):
        assert pathlib.Path(str(cfg[key])).is_relative_to(tmp_path / "rn")
    assert cfg["registerWithTaints"] == realnodes.real_nodes(2)[1].taints


@pytest.mark.parametrize(
    ("cidr", "gateway"),
    [("10.226.3.0/24", "10.226.3.1"), ("10.239.255.0/24", "10.239.255.1")],
)
def test_cni_conflist_bridges_the_pod_cidr_without_gateway_mode(
    tmp_path: pathlib.Path, cidr: str, gateway: str
) -> None:
    doc = nodeconfig.cni_conflist("trimtab-rn-n", pod_cidr=cidr, ipam_dir=tmp_path)
    bridge = doc["plugins"][0]
    assert (bridge["isGateway"], bridge["ipMasq"], bridge["hairpinMode"]) == (False, False, True)
    assert bridge["ipam"]["ranges"] == [[{"subnet": cidr, "gateway": gateway}]]
    assert bridge["ipam"]["dataDir"] == str(tmp_path)
    assert nodeconfig.gateway(cidr) == gateway


def test_kube_proxy_config_leaves_host_wide_conntrack_alone(tmp_path: pathlib.Path) -> None:
    cfg = nodeconfig.kube_proxy_config(
        kubeconfig=tmp_path / "kc", node="n", address="198.51.100.50", cluster_cidr="10.227.0.0/16"
    )
    assert (cfg["mode"], cfg["hostnameOverride"], cfg["clusterCIDR"]) == (
        "iptables",
        "n",
        "10.227.0.0/16",
    )
    assert cfg["conntrack"]["maxPerCore"] == 0
    assert cfg["healthzBindAddress"] == "198.51.100.50:10256"


# --- command lines ---------------------------------------------------------------------------


def test_node_processes_run_in_the_node_namespace_in_start_order(tmp_path: pathlib.Path) -> None:
    lay = _lay(tmp_path, real_nodes=2)
    node = realnodes.real_nodes(2)[1]
    comps = nodecomponents.for_node(lay, node, bin_dir=BIN, tools=TOOLS)
    assert [c.name for c in comps] == [
        "containerd.real-spot-0",
        "kubelet.real-spot-0",
        "kube-proxy.real-spot-0",
    ]
    for comp in comps:
        assert comp.argv[:3] == (TOOLS.nsenter, f"--net={lay.node(node.name).netns}", "--")
        assert comp.argv[3] == comp.binary
    kubelet = comps[1].argv
    assert f"--node-ip={lay.network.node_address(1)}" in kubelet
    assert any(a.startswith("--node-labels=") and "trimtab.io/real-node=true" in a for a in kubelet)


@pytest.mark.parametrize(
    ("real_nodes", "bind", "kubelet_flags"),
    [
        pytest.param(0, "127.0.0.1", False, id="kwok-only"),
        pytest.param(1, "198.51.100.49", True, id="with-real-nodes"),
    ],
)
def test_apiserver_binds_where_pods_reach_it(
    tmp_path: pathlib.Path, real_nodes: int, bind: str, kubelet_flags: bool
) -> None:
    argv = components.kube_apiserver(_lay(tmp_path, real_nodes=real_nodes), bin_dir=BIN).argv
    assert f"--bind-address={bind}" in argv
    assert f"--advertise-address={bind}" in argv
    assert any(a.startswith("--kubelet-client-certificate=") for a in argv) is kubelet_flags
    assert ("--enable-admission-plugins=NodeRestriction" in argv) is kubelet_flags


def test_pod_ranges_of_controller_manager_and_kwok_differ(tmp_path: pathlib.Path) -> None:
    lay = _lay(tmp_path)
    kcm = components.kube_controller_manager(lay, bin_dir=BIN).argv
    kwok = components.kwok(lay, bin_dir=BIN).argv
    assert f"--cluster-cidr={lay.network.cluster_cidr}" in kcm
    assert f"--cidr={addresses.KWOK_CIDR}" in kwok
    assert any(a.startswith("--flex-volume-plugin-dir=") and str(lay.root) in a for a in kcm)


# --- identities ------------------------------------------------------------------------------


def test_node_identities() -> None:
    client = pki.node_client("real-spot-0")
    assert (client.user, client.groups) == ("system:node:real-spot-0", ("system:nodes",))
    serving = pki.node_serving("real-spot-0", "198.51.100.3")
    assert serving.sans == ("DNS:real-spot-0", "IP:198.51.100.3")
    assert pki.KUBE_PROXY.user == "system:kube-proxy"
    assert "IP:198.51.100.1" in pki.apiserver_sans("198.51.100.1")


# --- images ----------------------------------------------------------------------------------


def _members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: (tar.extractfile(m) or io.BytesIO()).read() for m in tar if m.isfile()}


def test_docker_archive_names_the_image_and_checks_out() -> None:
    files = [images.File("/bin/busybox", b"\x7fELF"), images.File("/bin/sh", link="busybox")]
    archive = images.docker_archive("localhost/t/bb:1", files, images.ImageConfig(("/bin/sh",)))
    members = _members(archive)
    manifest = json.loads(members["manifest.json"])
    assert manifest[0]["RepoTags"] == ["localhost/t/bb:1"]
    layer = members[manifest[0]["Layers"][0]]
    config = json.loads(members[manifest[0]["Config"]])
    assert config["rootfs"]["diff_ids"] == [f"sha256:{hashlib.sha256(layer).hexdigest()}"]
    assert config["config"]["Entrypoint"] == ["/bin/sh"]
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        assert tar.getmember("bin").isdir()
        assert tar.getmember("bin/sh").linkname == "busybox"
        assert tar.getmember("bin/busybox").mode == 0o755


@pytest.mark.parametrize(
    ("output", "reference"),
    [
        ("pause.c v3.10.2", "localhost/trimtab/pause:3.10.2"),
        ("pause.c 3.10\n", "localhost/trimtab/pause:3.10"),
    ],
)
def test_pause_reference(output: str, reference: str) -> None:
    assert images.pause_reference(output) == reference


# --- the host record ---------------------------------------------------------------------


def test_record_round_trip_and_removal(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "host-changes.json"
    bridge = hostrecord.Change(hostrecord.Kind.LINK, "trimtab3")
    route = hostrecord.Change(hostrecord.Kind.ROUTE, "10.227.0.0/24", "trimtab3")
    for change in (bridge, route, bridge):
        hostrecord.add(path, change)
    assert hostrecord.load(path) == [bridge, route]
    hostrecord.remove(path, bridge)
    hostrecord.remove(path, route)
    assert not path.exists()


def test_undo_order_kills_then_unmounts_then_unlinks_latest_first() -> None:
    k = hostrecord.Kind
    made = [
        hostrecord.Change(k.LINK, "bridge"),
        hostrecord.Change(k.DIR, "/var/lib/kubelet"),
        hostrecord.Change(k.DIR, "/var/lib/kubelet/device-plugins"),
        hostrecord.Change(k.MOUNTS, "/state"),
        hostrecord.Change(k.LINK, "veth"),
        hostrecord.Change(k.CGROUP, "trimtab/rn"),
        hostrecord.Change(k.SHIMS, "/state/sock"),
    ]
    order = [(c.kind, c.target) for c in hostrecord.undo_order(made)]
    assert order == [
        (k.SHIMS, "/state/sock"),
        (k.MOUNTS, "/state"),
        (k.LINK, "veth"),
        (k.LINK, "bridge"),
        (k.CGROUP, "trimtab/rn"),
        (k.DIR, "/var/lib/kubelet/device-plugins"),
        (k.DIR, "/var/lib/kubelet"),
    ]


MOUNTINFO = """\
22 1 254:0 / / rw - ext4 /dev/vda rw
90 22 0:4 / /s/rn/nodes/n/netns rw - nsfs nsfs rw
91 22 254:0 /s/rn/nodes/n/kubelet/root /s/rn/nodes/n/kubelet/root rw - ext4 /dev/vda rw
92 91 0:50 / /s/rn/nodes/n/kubelet/root/pods/u/volumes/a\\040b rw - tmpfs tmpfs rw
93 22 0:51 / /s/rn2/x rw - tmpfs tmpfs rw
"""


def test_mount_points_under_a_prefix_deepest_first() -> None:
    points = host.mount_points_under(MOUNTINFO, pathlib.Path("/s/rn"))
    assert [str(p) for p in points] == [
        "/s/rn/nodes/n/kubelet/root/pods/u/volumes/a b",
        "/s/rn/nodes/n/kubelet/root",
        "/s/rn/nodes/n/netns",
    ]


def test_shim_socket_is_where_containerd_1_6_puts_it() -> None:
    # A known answer, measured: a SIGKILLed shim of this id, under a containerd whose
    # socket had this path, left exactly this socket behind. The path is only the input.
    sock = "/root/.local/state/trimtab/clusters/realnode/nodes/real-on-demand-0/containerd.sock"
    cid = "cd022776088f840c03ccdccfe298c6a945b8437149fe1d02cf9e6b8f14a9ab50"
    assert hostundo.shim_socket(sock, cid) == pathlib.Path(
        "/run/containerd/s/f8d2cee37746df77189771473dc4754e7a2a56248b22a1fc9959c4e9b047996f"
    )


# --- command line ----------------------------------------------------------------------------


def test_cli_parses_real_node_flags_and_load_image() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(
        ["cluster", "up", "--real-nodes", "2", "--image", "a.tar", "--image", "b.tar"]
    )
    assert (args.real_nodes, args.image) == (2, [pathlib.Path("a.tar"), pathlib.Path("b.tar")])
    load = parser.parse_args(["cluster", "--name", "rn", "load-image", "x.tar"])
    assert (load.name, load.action, load.archive) == ("rn", "load-image", pathlib.Path("x.tar"))


def _dir_record(root: pathlib.Path, name: str, target: pathlib.Path) -> pathlib.Path:
    record = root / name / "host-changes.json"
    hostrecord.add(record, hostrecord.Change(hostrecord.Kind.DIR, str(target)))
    return record


def test_undo_removes_an_empty_directory_it_created(tmp_path: pathlib.Path) -> None:
    made = tmp_path / "var-log-containers"
    made.mkdir()
    record = _dir_record(tmp_path / "clusters", "a", made)
    assert hostundo.undo(record) == []
    assert not made.exists()
    assert not record.exists()


@pytest.mark.parametrize(
    ("other_cluster_up", "problems"),
    [
        pytest.param(True, 0, id="handed-to-the-cluster-still-using-it"),
        pytest.param(False, 1, id="kept-and-reported"),
    ],
)
def test_a_directory_still_in_use_is_left_in_place(
    tmp_path: pathlib.Path, other_cluster_up: bool, problems: int
) -> None:
    shared = tmp_path / "var-lib-cni"
    shared.mkdir()
    (shared / "someone-elses-file").touch()
    clusters = tmp_path / "clusters"
    record = _dir_record(clusters, "a", shared)
    if other_cluster_up:
        _dir_record(clusters, "b", tmp_path / "unrelated")
    assert len(hostundo.undo(record)) == problems
    assert shared.exists()
    other = clusters / "b" / "host-changes.json"
    if other_cluster_up:
        assert hostrecord.Change(hostrecord.Kind.DIR, str(shared)) in hostrecord.load(other)
        assert not record.exists()
    else:
        assert record.exists()
