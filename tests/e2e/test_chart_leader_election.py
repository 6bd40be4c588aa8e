"""Leader election of the chart's operator run for real: `helm install` with replicas=2
puts two operator containers on the real node, elected through the chart's Lease
(trimtab.handlers.leadership): one holds it and reconciles, the other stands by. Deleting
the leader's pod (a graceful delete: the kubelet sends it SIGTERM) hands the Lease to the
standby, which then reconciles: a new pool gets its Deployment. The takeover time is
measured and printed; only a generous timeout bounds it.

While the leader stops, a ResourceQuota of two pods keeps the ReplicaSet's replacement
pod from being created until the deleted pod is gone, so the replica that takes over is
the standby that was waiting, not a fresh pod that started in time to race it.

A deleted standby stops as promptly: as its container's PID 1 it would ignore SIGTERM
without a handler, and every rollout or uninstall would wait out the grace period.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import realchart as rc
from tests.harness import samples
from trimtab.kube import objects
from trimtab.reconcile import naming
from trimtab_dev.devcluster import layout

pytestmark = pytest.mark.usefixtures("crds")
RELEASE = "tt"
START_S = 180  # two Python containers starting on a loaded two-core machine
TAKEOVER_S = 120  # the design says 15 s after a silent leader; a released Lease is faster
QUOTA = "hold-replacements"


@pytest.fixture(scope="module")
def release(
    helm: str,
    cluster: layout.Layout,
    kube: objects.ObjectStore,
    crds: None,
    project_image: str,
    host_redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, str]]:
    """The chart with replicas=2 on the real node, for the module; yields its namespace
    and the operator Deployment's name (which is also the Lease's). Each test first
    waits for two Ready replicas, one of them holding the Lease."""
    with (
        rc.restricted_namespace(kube, "chart-leader") as namespace,
        rc.installed(
            helm,
            cluster,
            kube,
            release=RELEASE,
            namespace=namespace,
            # Without the API server: the quota below counts the namespace's pods.
            chart_values=rc.values(namespace, host_redis_url, replicas=2, api={"enabled": False}),
            workdir=tmp_path_factory.mktemp("chart-leader"),
        ) as deployment,
    ):
        yield namespace, deployment


def _holder(kube: objects.ObjectStore, namespace: str, name: str) -> str:
    """The pod holding the Lease ("" when none does): holder identities are
    `<hostname>_<pid>_<random>`, and a pod's hostname is its name."""
    lease = kube.get("coordination.k8s.io/v1", "Lease", name, namespace)
    identity = str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")
    return identity.split("_", 1)[0]


def _messages(lay: layout.Layout, namespace: str, pod: str) -> list[str]:
    return rc.messages(rc.log_lines(lay, namespace, pod))


def _running_pair(kube: objects.ObjectStore, namespace: str) -> list[dict[str, Any]] | None:
    pods = rc.operator_pods(kube, namespace, RELEASE)
    ready = [p for p in pods if rc.condition(p, "Ready") == "True"]
    return ready if len(ready) == 2 else None


def _hold_replacements(kube: objects.ObjectStore, namespace: str) -> None:
    """A quota of exactly the two pods running, once the quota controller counted them
    (admission refuses pods under a quota whose usage is not known yet)."""
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": QUOTA, "namespace": namespace},
            "spec": {"hard": {"pods": "2"}},
        }
    )
    kube.wait_for(
        "v1",
        "ResourceQuota",
        QUOTA,
        namespace=namespace,
        until=lambda q: ((q.get("status") or {}).get("used") or {}).get("pods") == "2",
        timeout=60,
    )


def _leader_and_standby(
    lay: layout.Layout, kube: objects.ObjectStore, namespace: str, lease: str
) -> tuple[str, str]:
    """Once both replicas run on the real node, one holding the Lease and the other
    logging that it stands by: the leader's pod and the standby's."""
    pods = rc.eventually(
        lambda: _running_pair(kube, namespace),
        what=lambda: (
            "two Ready operator pods: "
            f"{[p.get('status') for p in rc.operator_pods(kube, namespace, RELEASE)]}"
        ),
        timeout=START_S,
    )
    for pod in pods:
        assert pod["spec"]["nodeName"] == rc.NODE.name
        status = rc.container_status(pod, rc.OPERATOR_CONTAINER)
        assert status["containerID"].startswith("containerd://"), status
    names = {p["metadata"]["name"] for p in pods}

    def leading() -> str | None:
        holder = _holder(kube, namespace, lease)
        return holder if holder in names else None

    leader = rc.eventually(
        leading,
        what=lambda: f"Lease {lease} held by one of {names}: {_holder(kube, namespace, lease)!r}",
        timeout=START_S,
    )
    [standby] = names - {leader}
    waiting = f"standing by for lease {namespace}/{lease}"
    rc.eventually(
        lambda: waiting in _messages(lay, namespace, standby),
        what=lambda: f"{standby} logged no {waiting!r}",
        timeout=60,
    )
    return leader, standby


class StandbyStillRunningError(AssertionError):
    """A standby that outlived half its grace period after its pod was deleted."""


def test_a_deleted_standby_pod_stops_well_within_its_grace_period(
    cluster: layout.Layout,
    kube: objects.ObjectStore,
    release: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    namespace, lease = release
    _, standby = _leader_and_standby(cluster, kube, namespace, lease)
    pod = kube.get("v1", "Pod", standby, namespace)
    assert pod is not None
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    deleted_at = time.monotonic()
    assert kube.delete("v1", "Pod", standby, namespace)
    while kube.get("v1", "Pod", standby, namespace) is not None:
        if time.monotonic() - deleted_at > grace / 2:
            raise StandbyStillRunningError(
                f"the standby's pod {standby} is not gone {grace / 2:.0f} s after its "
                f"delete (grace period {grace} s)"
            )
        time.sleep(0.2)
    with capsys.disabled():
        print(
            f"\n[leader election] deleted standby {standby}: gone after "
            f"{time.monotonic() - deleted_at:.1f} s (grace period {grace} s)"
        )


def test_a_standby_takes_over_the_lease_when_the_leader_pod_is_deleted(
    cluster: layout.Layout,
    kube: objects.ObjectStore,
    release: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    namespace, lease = release
    leader, standby = _leader_and_standby(cluster, kube, namespace, lease)
    _hold_replacements(kube, namespace)

    deleted_at = time.monotonic()
    assert kube.delete("v1", "Pod", leader, namespace)
    released_at: float | None = None

    def taken() -> bool:
        nonlocal released_at
        holder = _holder(kube, namespace, lease)
        if holder != leader and released_at is None:
            released_at = time.monotonic()  # released, or already taken
        return holder == standby

    rc.eventually(
        taken,
        what=lambda: (
            f"the Lease is held by {_holder(kube, namespace, lease)!r}, not the standby {standby}"
            f" (the deleted leader was {leader}); the standby last logged"
            f" {_messages(cluster, namespace, standby)[-5:]}"
        ),
        timeout=TAKEOVER_S,
    )
    took = time.monotonic() - deleted_at
    released = (released_at or time.monotonic()) - deleted_at
    with capsys.disabled():
        print(
            f"\n[leader election] deleted leader {leader}; the Lease left it after "
            f"{released:.1f} s; standby {standby} held it {took:.1f} s after the delete"
        )
    acquired = f"acquired lease {namespace}/{lease} as {standby}_"
    rc.eventually(
        lambda: any(m.startswith(acquired) for m in _messages(cluster, namespace, standby)),
        what=f"{standby} logged no {acquired!r}",
        timeout=30,
    )

    # The new leader reconciles: a pool applied now gets its worker Deployment.
    kube.apply(samples.pool_doc(namespace, "after-takeover", scaling={"minReplicas": 0}))
    kube.wait_for(
        "apps/v1",
        "Deployment",
        naming.worker_deployment("after-takeover"),
        namespace=namespace,
        until=lambda d: True,
        timeout=TAKEOVER_S,
    )
    assert _holder(kube, namespace, lease) == standby
