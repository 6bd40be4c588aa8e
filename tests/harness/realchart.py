"""The chart installed for real: its operator as a container of the project's image on
the session cluster's real node, and what the e2e tests read off such a pod.

`helm install` puts the operator there through the chart's own `nodeSelector` and
`tolerations` values (trimtab_dev.devcluster.realnodes.placement), into a namespace that
enforces the restricted Pod Security profile. The readers look past the API's word where
they can: the image containerd holds under a reference, the kubelet's own probe counters,
and the operator's sockets and credentials from inside its container (`kubectl exec`).
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import re
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import yaml

from tests.harness import chart, realworkers
from tests.harness import cluster as cluster_harness
from trimtab.kube import objects
from trimtab_dev.devcluster import host, layout, realnodes, runtime

NODE = realworkers.NODE  # real-on-demand-0, which every cluster with one runs
eventually = realworkers.eventually
OPERATOR_CONTAINER = "operator"
PSA_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
# Run in the operator's container (the image's python, as the container's user): what
# it connects with and to. /proc/net/tcp lists the peers as the process addressed them,
# before kube-proxy's DNAT; state 01 is ESTABLISHED. Only the token's subject is read.
_INSIDE = r"""
import base64, json, os, pathlib, socket, struct
sa = pathlib.Path("/var/run/secrets/kubernetes.io/serviceaccount")
payload = (sa / "token").read_text().split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
peers = []
for line in pathlib.Path("/proc/net/tcp").read_text().splitlines()[1:]:
    fields = line.split()
    if fields[3] == "01":
        address, port = fields[2].split(":")
        ip = socket.inet_ntoa(struct.pack("<I", int(address, 16)))
        peers.append(ip + ":" + str(int(port, 16)))
env = ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBECONFIG")
print(json.dumps({
    "env": {k: os.environ.get(k) for k in env},
    "token_subject": claims.get("sub"),
    "namespace": (sa / "namespace").read_text(),
    "peers": sorted(set(peers)),
    "uid": os.getuid(),
}))
"""


@contextlib.contextmanager
def restricted_namespace(kube: objects.ObjectStore, stem: str) -> Iterator[str]:
    """A fresh namespace enforcing `restricted` at the latest version; deleted after
    (its pods then stop on their own time: the test does not wait for them)."""
    name = f"t-{stem}-{uuid.uuid4().hex[:6]}"
    meta = {"name": name, "labels": dict(PSA_LABELS)}
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
    try:
        yield name
    finally:
        kube.delete("v1", "Namespace", name)


def values(namespace: str, redis_url: str, **more: Any) -> dict[str, Any]:
    """Chart values: the operator on the real node, watching `namespace`, on `redis_url`."""
    where = realnodes.placement(NODE)
    return {
        "watchNamespaces": [namespace],
        "redis": {"url": redis_url},
        "nodeSelector": where["nodeSelector"],
        "tolerations": where["tolerations"],
        **more,
    }


@contextlib.contextmanager
def installed(
    helm: str,
    lay: layout.Layout,
    kube: objects.ObjectStore,
    *,
    release: str,
    namespace: str,
    chart_values: dict[str, Any],
    workdir: pathlib.Path,
) -> Iterator[str]:
    """`helm install` of the chart with `chart_values` (the session's CRDs adopted first);
    yields the operator Deployment's name; `helm uninstall` after."""
    chart.adopt_crds(kube, release, namespace)
    path = workdir / f"{release}-values.yaml"
    path.write_text(yaml.safe_dump(chart_values))
    argv = [helm, "install", release, str(chart.CHART), "-n", namespace, "-f", str(path)]
    done = chart.run(argv, lay.kubeconfig)
    assert done.returncode == 0, done.stdout + done.stderr
    try:
        yield f"{release}-trimtab"
    finally:
        gone = chart.run([helm, "uninstall", release, "-n", namespace], lay.kubeconfig)
        assert gone.returncode == 0, gone.stdout + gone.stderr


def operator_pods(kube: objects.ObjectStore, namespace: str, release: str) -> list[dict[str, Any]]:
    """The release's operator pods that are not being deleted."""
    selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/component=operator"
    found = kube.list("v1", "Pod", namespace=namespace, label_selector=selector)
    return [p for p in found if not p["metadata"].get("deletionTimestamp")]


def container_status(pod: dict[str, Any], name: str) -> dict[str, Any]:
    """A container's status (empty before the kubelet reports one)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return next((s for s in statuses if s["name"] == name), {})


def condition(pod: dict[str, Any], kind: str) -> str | None:
    conds = (pod.get("status") or {}).get("conditions") or []
    return next((c["status"] for c in conds if c["type"] == kind), None)


def image_id_on_node(lay: layout.Layout, node: realnodes.RealNode, reference: str) -> str:
    """The image ID (its config's digest, what the CRI reports as a container's imageID)
    of the image the node's containerd holds under `reference`."""
    sock = lay.node(node.name).containerd_sock
    argv = [host.tools().ctr, f"--address={sock}", f"--namespace={runtime.NAMESPACE}"]
    listed = subprocess.run([*argv, "images", "ls"], capture_output=True, text=True, check=True)
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    [digest] = [row[2] for row in rows if row and row[0] == reference]
    manifest = subprocess.run(
        [*argv, "content", "get", digest], capture_output=True, text=True, check=True
    )
    return str(json.loads(manifest.stdout)["config"]["digest"])


_SAMPLE = re.compile(r"^prober_probe_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def kubelet_probe_counts(
    kube: objects.ObjectStore, node: realnodes.RealNode, pod: dict[str, Any]
) -> dict[tuple[str, str], float]:
    """The kubelet's own count of the probes it ran on `pod`, by (probe type, result),
    from its /metrics/probes through the apiserver's node proxy."""
    text = kube.raw(f"/api/v1/nodes/{node.name}/proxy/metrics/probes")
    counts: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        sample = _SAMPLE.match(line)
        if sample is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', sample["labels"]))
        if labels.get("pod_uid") == pod["metadata"]["uid"]:
            key = (labels["probe_type"], labels["result"])
            counts[key] = counts.get(key, 0.0) + float(sample["value"])
    return counts


def inside(lay: layout.Layout, namespace: str, pod: str) -> dict[str, Any]:
    """What the operator's container connects with and to (see _INSIDE), via kubectl exec."""
    done = cluster_harness.kubectl(
        lay, "exec", "-n", namespace, pod, "-c", OPERATOR_CONTAINER, "--", "python", "-c", _INSIDE
    )
    assert done.returncode == 0, f"kubectl exec into {namespace}/{pod}: {done.stderr}"
    return dict(json.loads(done.stdout))


def log_lines(lay: layout.Layout, namespace: str, pod: str) -> list[str]:
    """`kubectl logs` of the operator container: the apiserver asks the node's kubelet."""
    done = cluster_harness.kubectl(lay, "logs", "-n", namespace, pod, "-c", OPERATOR_CONTAINER)
    assert done.returncode == 0, f"kubectl logs {namespace}/{pod}: {done.stderr}"
    return done.stdout.splitlines()


def messages(lines: list[str]) -> list[str]:
    """The message of each log line: JSON lines (the chart's default) or plain text."""
    out = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            out.append(line)
            continue
        out.append(str(record.get("message", line)) if isinstance(record, dict) else line)
    return out


def dry_run_unrestricted_pod(
    lay: layout.Layout, namespace: str
) -> subprocess.CompletedProcess[str]:
    """A server-side dry-run create of a pod that breaks the restricted profile (it sets
    no security context at all): what the namespace's PodSecurity admission answers."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "breaks-restricted", "namespace": namespace},
        "spec": {"containers": [{"name": "main", "image": "localhost/none:never"}]},
    }
    return cluster_harness.kubectl(
        lay, "create", "--dry-run=server", "-f", "-", stdin=json.dumps(pod)
    )


def events(
    kube: objects.ObjectStore, namespace: str, *, kind: str, reason: str, name_prefix: str = ""
) -> list[str]:
    """The messages of events in `namespace` with `reason`, about objects of `kind`
    whose names start with `name_prefix`."""
    found = kube.list("v1", "Event", namespace=namespace)
    return [
        f"{e['involvedObject']['name']}: {e.get('message')}"
        for e in found
        if e["involvedObject"]["kind"] == kind
        and e["involvedObject"]["name"].startswith(name_prefix)
        and e.get("reason") == reason
    ]
