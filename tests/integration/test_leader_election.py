"""Leader election on the real API server: the Lease as a compare-and-swap lock between
replicas, and two `trimtab operator run --leader-elect` processes of which exactly one
reconciles until it dies, when the other takes over."""

from __future__ import annotations

import pathlib
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest
import yaml

from tests.harness import redis_server, samples, tcp_proxy
from trimtab.kube import client, lease, objects
from trimtab.reconcile import leader, naming
from trimtab_dev.devcluster import layout

pytestmark = pytest.mark.usefixtures("crds")


def test_only_one_replica_holds_the_lease_until_it_expires(
    kube: objects.ObjectStore, namespace: str
) -> None:
    a = lease.LeaseLock(kube, namespace, "trimtab", "a")
    b = lease.LeaseLock(kube, namespace, "trimtab", "b")
    now = time.time()
    assert a.try_acquire(now)
    assert not b.try_acquire(now + 1)  # b first sees a's record
    assert a.try_acquire(now + 5)  # renewed: a new record
    assert not b.try_acquire(now + 6)  # seen changed: b's wait starts again
    assert not b.try_acquire(now + 6 + leader.LEASE_SECONDS - 1)
    assert b.try_acquire(now + 6 + leader.LEASE_SECONDS)  # unchanged a whole lease: taken
    later = now + 6 + leader.LEASE_SECONDS
    assert not a.try_acquire(later + 1)
    stored = kube.get(lease.API_VERSION, lease.KIND, "trimtab", namespace)
    assert stored is not None
    assert (stored["spec"]["holderIdentity"], stored["spec"]["leaseTransitions"]) == ("b", 1)
    b.release()
    assert a.try_acquire(later + 2)  # released: no wait


def test_a_write_decided_on_a_stale_version_is_refused(
    kube: objects.ObjectStore, namespace: str
) -> None:
    a = lease.LeaseLock(kube, namespace, "trimtab", "a")
    now = time.time()
    assert a.try_acquire(now)
    stale = kube.get(lease.API_VERSION, lease.KIND, "trimtab", namespace)
    assert stale is not None
    assert a.try_acquire(now + 1)  # the version moves on
    b = lease.LeaseLock(kube, namespace, "trimtab", "b")
    # b decided to take over on what it read earlier; the swap must fail.
    with pytest.raises(objects.ApiError) as refused:
        b._write(
            leader.lease_spec(leader.view_of(stale), "b", now + 30),
            stale["metadata"]["resourceVersion"],
        )
    assert refused.value.status == lease.CONFLICT


def _operator(namespace: str, redis_url: str, log: pathlib.Path) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-m", "trimtab", "operator", "run",
        "-n", namespace,
        "--leader-elect",
        "--leader-election-namespace", namespace,
        "--redis-url", redis_url,
        "--metrics-port", "0",
        "--health-port", str(redis_server.free_port()),
    ]  # fmt: skip
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=out)


def _holder(kube: objects.ObjectStore, namespace: str) -> str:
    found = kube.get(lease.API_VERSION, lease.KIND, "trimtab", namespace)
    return str(((found or {}).get("spec") or {}).get("holderIdentity") or "")


def test_two_operators_one_leads_and_the_other_takes_over_when_it_dies(
    kube: objects.ObjectStore, namespace: str, redis_url: str, tmp_path: pathlib.Path
) -> None:
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    first = _operator(namespace, redis_url, logs[0])
    deadline = time.monotonic() + 30
    while not _holder(kube, namespace):
        assert time.monotonic() < deadline, logs[0].read_text()[-3000:]
        time.sleep(0.2)
    second = _operator(namespace, redis_url, logs[1])
    try:
        leading = _holder(kube, namespace)
        kube.apply(samples.pool_doc(namespace, "one"))
        kube.wait_for(
            "apps/v1", "Deployment", naming.worker_deployment("one"), namespace=namespace,
            until=lambda _: True,
        )  # fmt: skip
        time.sleep(3)  # the standby has had time to act, were it (wrongly) active
        assert _holder(kube, namespace) == leading
        assert "standing by" in logs[1].read_text()
        assert "applied Deployment" not in logs[1].read_text()

        first.send_signal(signal.SIGKILL)  # no release: the lease must expire
        first.wait(timeout=10)
        killed_at = time.monotonic()
        kube.apply(samples.pool_doc(namespace, "two"))
        kube.wait_for(
            "apps/v1", "Deployment", naming.worker_deployment("two"), namespace=namespace,
            until=lambda _: True, timeout=leader.LEASE_SECONDS + 30,
        )  # fmt: skip
        # It waited for the lease to expire: counted from the last renewal, which came
        # up to one retry interval before the kill.
        waited = time.monotonic() - killed_at
        assert waited >= leader.LEASE_SECONDS - leader.RETRY_SECONDS - 1
        assert _holder(kube, namespace) not in ("", leading)
        # The Deployment is in the apiserver a moment before the new leader logs it.
        _wait_for_line(logs[1], "applied Deployment", seconds=10)

        # A clean stop releases the lease at once.
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0
        assert _holder(kube, namespace) == ""
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _wait_for_line(log: pathlib.Path, text: str, *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while text not in log.read_text():
        assert time.monotonic() < deadline, f"{text!r} not in {log}: {log.read_text()[-3000:]}"
        time.sleep(0.2)


def test_a_lease_call_on_a_silent_connection_fails_by_its_deadline_and_the_next_one_succeeds(
    cluster: layout.Layout, namespace: str, tmp_path: pathlib.Path
) -> None:
    """A replica whose connection to the API server goes silent (a dropped NAT entry, a
    half-open socket) gets an error from its Lease call within the request deadline,
    not a call that never returns, and so keeps polling: once the network answers
    again, it renews. Without a deadline a standby stuck like this never takes over."""
    kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
    server = urllib.parse.urlsplit(kubeconfig["clusters"][0]["cluster"]["server"])
    assert server.hostname is not None
    assert server.port is not None
    with tcp_proxy.stalling_proxy((server.hostname, server.port)) as proxy:
        kubeconfig["clusters"][0]["cluster"]["server"] = f"https://{proxy.host}:{proxy.port}"
        proxied = tmp_path / "kubeconfig"
        proxied.write_text(yaml.safe_dump(kubeconfig))
        store = objects.ObjectStore(client.connect(str(proxied), request_seconds=1.0))
        lock = lease.LeaseLock(store, namespace, "trimtab", "a")
        assert lock.try_acquire(time.time())

        proxy.stall()
        ended: list[BaseException | bool] = []

        def poll() -> None:
            try:
                ended.append(lock.try_acquire(time.time()))
            except Exception as exc:  # the deadline's error, whichever layer raises it
                ended.append(exc)

        polling = threading.Thread(target=poll, daemon=True)
        polling.start()
        polling.join(timeout=60)  # a 1 s deadline, retried by urllib3 a few times
        assert not polling.is_alive(), "a Lease call on a silent connection never returned"
        [outcome] = ended
        assert isinstance(outcome, Exception), outcome

        proxy.resume()
        assert lock.try_acquire(time.time())  # renewed: the replica still holds it
