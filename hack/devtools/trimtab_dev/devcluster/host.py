"""Every change the real nodes make to the host, and undoing it: this module owns them.

What it touches outside a cluster's state dir, and nothing else:
- links: one bridge per cluster (`trimtab<slot>`) that holds the host's address on the
  node network, one veth per node into that node's network namespace, and a route per
  node's pod range (deleted with the bridge, and explicitly);
- cgroups: a subtree `/trimtab/<cluster>` in every cgroup hierarchy, the kubelets'
  cgroupRoot (the kubelet will not start without it);
- the directories the kubelet and containerd write whatever their configuration says
  (`HARDCODED_DIRS`), and the files they leave in them;
- mounts: the nodes' network namespaces, the kubelet's volumes and containerd's
  rootfs and shm mounts, all under the state dir, and stray containerd shims.

Each change is recorded (`hostrecord`) before it is made; `undo` reverses the record.
Inside a node's own network namespace (its loopback, routes, iptables rules,
ip_forward) nothing needs undoing: the namespace goes as a whole. The host's
ip_forward, its iptables and its own interfaces are never changed.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess

from trimtab_dev.devcluster import addresses, nodecomponents, nodeconfig
from trimtab_dev.devcluster import hostrecord as rec

CGROUP_FS = pathlib.Path("/sys/fs/cgroup")
CGROUP_PARENT = nodeconfig.CGROUP_PARENT
HARDCODED_DIRS = (
    "/var/lib/kubelet",  # the device-plugin socket path is compiled into the kubelet
    "/var/lib/kubelet/device-plugins",
    "/var/log/containers",  # the kubelet's legacy log symlinks
    "/var/lib/cni",  # libcni's result cache
    "/var/lib/cni/results",
    "/run/containerd",  # shim sockets: /run/containerd/s
    "/run/containerd/s",
)
_SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class HostError(RuntimeError):
    """A host change could not be made."""


def search_path() -> str:
    """PATH with the sbin directories, where iproute2 and runc live."""
    return f"{os.environ.get('PATH', '')}:{_SBIN_PATH}"


def tools() -> nodecomponents.HostTools:
    """The host executables a real node needs, or an error naming what to install."""
    names = ("nsenter", "containerd", "runc", "ctr", "ip")
    found = {n: shutil.which(n, path=search_path()) for n in names}
    missing = [n for n, p in found.items() if p is None]
    if missing or os.geteuid() != 0:
        need = f"missing {', '.join(missing)} " if missing else ""
        raise HostError(
            f"real nodes need root and containerd, runc, iproute2, util-linux ({need}"
            "see hack/install-deps.sh); use --real-nodes 0 for simulated nodes only"
        )
    return nodecomponents.HostTools(**{n: str(p) for n, p in found.items()})


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": search_path()}
    result = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    if check and result.returncode != 0:
        raise HostError(f"{' '.join(argv)}: {result.stderr.strip()}")
    return result


def in_netns(t: nodecomponents.HostTools, netns: pathlib.Path, *argv: str) -> None:
    run(t.nsenter, f"--net={netns}", "--", *argv)


def _link_exists(name: str) -> bool:
    return pathlib.Path("/sys/class/net", name).exists()


def ensure_bridge(
    record: pathlib.Path, t: nodecomponents.HostTools, net: addresses.Network, owner: str
) -> None:
    """The cluster's bridge with the host's address; its alias names the owning state dir."""
    change = rec.Change(rec.Kind.LINK, net.bridge)
    if _link_exists(net.bridge):
        alias = pathlib.Path("/sys/class/net", net.bridge, "ifalias").read_text().strip()
        if alias != owner and change not in rec.load(record):
            raise HostError(
                f"{net.bridge} belongs to {alias or 'another user'}: rename this cluster"
            )
        return
    rec.add(record, change)
    run(t.ip, "link", "add", "name", net.bridge, "type", "bridge")
    run(t.ip, "link", "set", net.bridge, "alias", owner)
    run(t.ip, "addr", "add", f"{net.host_address}/{net.subnet.prefixlen}", "dev", net.bridge)
    run(t.ip, "link", "set", net.bridge, "up")


def ensure_netns(record: pathlib.Path, netns: pathlib.Path) -> None:
    """A network namespace kept alive by a bind mount on `netns` (under the state dir)."""
    if netns in mounts_under(netns):
        return
    rec.add(record, rec.Change(rec.Kind.NETNS, str(netns)))
    netns.parent.mkdir(parents=True, exist_ok=True)
    netns.touch()
    run("unshare", f"--net={netns}", "true")


def _ensure_veth(
    record: pathlib.Path,
    t: nodecomponents.HostTools,
    net: addresses.Network,
    index: int,
    netns: pathlib.Path,
) -> None:
    veth = net.veth(index)
    if not _link_exists(veth):
        rec.add(record, rec.Change(rec.Kind.LINK, veth))
        run(t.ip, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", str(netns))
        run(t.ip, "link", "set", veth, "master", net.bridge, "up")


def ensure_node_link(
    record: pathlib.Path,
    t: nodecomponents.HostTools,
    net: addresses.Network,
    *,
    index: int,
    netns: pathlib.Path,
) -> None:
    """Node `index`'s veth from the bridge to its namespace's eth0, addressed and routed."""
    _ensure_veth(record, t, net, index, netns)
    address = f"{net.node_address(index)}/{net.subnet.prefixlen}"
    for argv in (
        ("addr", "replace", address, "dev", "eth0"),
        ("link", "set", "eth0", "up"),
        ("link", "set", "lo", "up"),
        ("route", "replace", "default", "via", net.host_address),
    ):
        in_netns(t, netns, t.ip, *argv)
    # Forwarding inside the node's namespace only: pods' traffic leaves through eth0.
    in_netns(t, netns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")


def ensure_pod_network(
    record: pathlib.Path,
    t: nodecomponents.HostTools,
    net: addresses.Network,
    *,
    netns: pathlib.Path,
    pod_cidr: str,
    node_address: str,
    gateway: str,
) -> None:
    """The pods' bridge in the node's namespace with its gateway, and the host's route
    back to the node's pod range (so replies reach pods without any NAT)."""
    probe = run(t.nsenter, f"--net={netns}", "--", t.ip, "link", "show", "cni0", check=False)
    if probe.returncode != 0:
        in_netns(t, netns, t.ip, "link", "add", "cni0", "type", "bridge")
    in_netns(t, netns, t.ip, "addr", "replace", f"{gateway}/24", "dev", "cni0")
    in_netns(t, netns, t.ip, "link", "set", "cni0", "up")
    rec.add(record, rec.Change(rec.Kind.ROUTE, pod_cidr, net.bridge))
    run(t.ip, "route", "replace", pod_cidr, "via", node_address, "dev", net.bridge)


def cgroup_hierarchies() -> list[pathlib.Path]:
    """Mount points of every cgroup hierarchy (v1 controllers and the v2 one)."""
    mounts = pathlib.Path("/proc/self/mounts").read_text().splitlines()
    return [pathlib.Path(m.split()[1]) for m in mounts if m.split()[2] in ("cgroup", "cgroup2")]


def ensure_cgroup(record: pathlib.Path, cluster: str, node: str) -> None:
    """/trimtab/<cluster>/<node> in every hierarchy, cpusets filled from their parent."""
    subtree = f"{CGROUP_PARENT}/{cluster}"
    rec.add(record, rec.Change(rec.Kind.CGROUP, subtree))
    rec.add(record, rec.Change(rec.Kind.CGROUP_PROCS, subtree))
    own = nodeconfig.cgroup_root(cluster, node).lstrip("/")  # the kubelet's cgroupRoot
    for root in cgroup_hierarchies():
        for rel in (CGROUP_PARENT, subtree, own):
            (root / rel).mkdir(exist_ok=True)
            if (root / rel / "cpuset.cpus").exists():
                _copy_cpuset(root / rel)


def _copy_cpuset(cg: pathlib.Path) -> None:
    # A v1 cpuset with no cpus or mems accepts no task.
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not (cg / name).read_text().strip():
            (cg / name).write_text((cg.parent / name).read_text())


def record_hardcoded_dirs(record: pathlib.Path) -> None:
    """Remember which of the directories the node processes create did not exist yet."""
    for d in HARDCODED_DIRS:
        if not os.path.lexists(d):
            rec.add(record, rec.Change(rec.Kind.DIR, d))


def mount_points_under(mountinfo: str, prefix: pathlib.Path) -> list[pathlib.Path]:
    """Mount points at or below `prefix` in a mountinfo text, deepest first."""
    found = []
    for line in mountinfo.splitlines():
        # Field 5 is the mount point, with space, tab, newline and backslash in octal.
        point = re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
        if point == str(prefix) or point.startswith(f"{prefix}/"):
            found.append(pathlib.Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def mounts_under(prefix: pathlib.Path) -> list[pathlib.Path]:
    return mount_points_under(pathlib.Path("/proc/self/mountinfo").read_text(), prefix)
