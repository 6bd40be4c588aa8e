"""Run traces from worker pods running for real on the real node, into a real Jaeger on
the host's bridge address: the operator passes its OTEL_* settings on to the pods it
deploys, and a run whose first step is reclaimed from a SIGKILLed worker process and
then retried is one trace, its run span the operator's and every attempt's span its
child, whichever pod ran it."""

from __future__ import annotations

import os
import pathlib
import signal
from typing import Any

import pytest
import redis

from tests.harness import realworkers as rw
from trimtab.kube import objects
from trimtab.queue import keys, wire
from trimtab.sdk import sync as sdk_sync
from trimtab.telemetry import ids
from trimtab_dev import jaeger as jaeger_mod
from trimtab_dev.devcluster import layout

pytestmark = pytest.mark.usefixtures("crds", "project_image")
POOL, WORKFLOW, REPLICAS = "traced", "chain", 2
# The first call (a's, cut off by the kill) answers after 6 s; the second (a's
# redelivery) fails, so a is retried; the rest answer.
SIM = {
    "seed": 4,
    "default": {"ttft_seconds": 0.0, "per_token_seconds": 0.0},
    "models": {"sim-small": {"name": "sim-small", "ttft_seconds": 6.0, "script": ["ok", "500"]}},
}
STEPS = [
    {"name": "a", "prompt": "First", "maxTokens": 8, "retry": {"backoff": {"initialSeconds": 0.5}}},
    {"name": "b", "dependsOn": ["a"], "prompt": "Then {{ a }}", "maxTokens": 8},
]


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span.get("tags", [])}


def _parent(span: dict[str, Any]) -> str | None:
    refs = [r for r in span.get("references", []) if r["refType"] == "CHILD_OF"]
    return refs[0]["spanID"] if refs else None


def _process_tags(trace: dict[str, Any], span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in trace["processes"][span["processID"]]["tags"]}


def test_a_reclaimed_and_retried_step_of_pods_is_one_trace_in_jaeger(
    kube: objects.ObjectStore,
    cluster: layout.Layout,
    namespace: str,
    host_redis_url: str,
    tmp_path: pathlib.Path,
) -> None:
    assert cluster.host_address is not None
    rds = redis.Redis.from_url(host_redis_url)
    with jaeger_mod.running_jaeger(cluster.host_address) as jaeger:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        }
        spec = {
            "worker": {"concurrency": 2},
            "queue": {"visibilityTimeoutSeconds": 4},
            "scaling": {"mode": "Manual"},
            "replicas": REPLICAS,
        }
        with rw.system(
            cluster, namespace, host_redis_url, tmp_path, sim=SIM, operator_env=env
        ) as sim:
            kube.apply(rw.pool_doc(namespace, POOL, sim, **spec))
            kube.apply(rw.workflow_doc(namespace, WORKFLOW, POOL, STEPS))
            rw.eventually(
                lambda: len(rw.serving(kube, namespace, POOL)) == REPLICAS,
                what=lambda: f"pods: {rw.pods(kube, namespace, POOL)}",
                timeout=120,
            )
            pod = rw.pods(kube, namespace, POOL)[0]
            (container,) = [c for c in pod["spec"]["containers"] if c["name"] == "worker"]
            worker_env = {e["name"]: e.get("value") for e in container.get("env", [])}
            assert worker_env["OTEL_EXPORTER_OTLP_ENDPOINT"] == jaeger.otlp_endpoint
            client = sdk_sync.SyncClient(host_redis_url)
            ref = rw.submit_when_published(client, namespace, WORKFLOW, {})
            run_id = ref.split("/")[1]

            def running_on() -> str | None:
                step = rw.steps(rds, ref).get("a", {})
                if step.get(wire.StepField.STATE) == wire.StepState.RUNNING:
                    return step.get(wire.StepField.WORKER)
                return None

            victim_worker = rw.eventually(running_on, what="a never started", timeout=60)
            pods = {p["metadata"]["name"]: p for p in rw.serving(kube, namespace, POOL)}
            os.kill(rw.host_pid(cluster, pods[rw.pod_of(victim_worker)]), signal.SIGKILL)
            rw.wait_ended(client, [ref], timeout=120)
            assert client.get(ref).status == "succeeded"
            assert client.get(ref).steps["a"].attempt == 2, "a's redelivery failed: retried"
            trace_id = ids.run_trace(namespace, run_id).trace_id

            def complete() -> dict[str, Any] | None:
                found = jaeger.trace(trace_id)
                names = [s["operationName"] for s in (found or {}).get("spans", [])]
                wanted = names.count("step a") == 2 and "step b" in names
                return found if found and wanted and f"run {WORKFLOW}" in names else None

            trace = rw.eventually(complete, what=lambda: str(jaeger.trace(trace_id)), timeout=60)
            assert rds.xlen(keys.ended_runs(namespace)) == 0
    spans = trace["spans"]
    services = {p: v["serviceName"] for p, v in trace["processes"].items()}
    (root,) = [s for s in spans if s["operationName"] == f"run {WORKFLOW}"]
    assert services[root["processID"]] == "trimtab-operator"
    assert root["spanID"] == f"{ids.run_trace(namespace, run_id).span_id:016x}"
    steps = [s for s in spans if s["operationName"].startswith("step ")]
    assert {_parent(s) for s in steps} == {root["spanID"]}
    first, second = sorted(
        (s for s in steps if s["operationName"] == "step a"), key=lambda s: s["startTime"]
    )
    assert _tags(first)["trimtab.worker"] != victim_worker, "the killed worker's span never ended"
    assert _tags(first)["trimtab.attempt"] == 1
    assert _tags(first)["otel.status_code"] == "ERROR"
    assert _tags(second)["trimtab.attempt"] == 2
    for span in steps:
        assert services[span["processID"]] == "trimtab-worker"
        pod_name = _process_tags(trace, span)["k8s.pod.name"]
        assert pod_name.startswith(f"{POOL}-worker-"), pod_name
