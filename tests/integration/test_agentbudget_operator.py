"""An AgentBudget end to end, against the real apiserver, redis-server, a worker process
and the simulator: the operator resolves the workflows its selector matches and
publishes it, the worker holds every call on it, its status counts the spend, it warns
at warnAt and says when it is spent (Warning Events, the warnings metric), new runs are
refused with a clear error, and deleting it lifts the limit."""

from __future__ import annotations

import pathlib
import time
from collections.abc import Iterator
from typing import Any

import prometheus_client
import pytest
import redis

from tests.harness import operator, runtime, samples
from trimtab.api.v1alpha1 import API_VERSION
from trimtab.kube import objects
from trimtab.queue import keys, wire
from trimtab.sdk import client as sdk
from trimtab.sdk import sync as sdk_sync
from trimtab.worker import spending

pytestmark = pytest.mark.usefixtures("crds")
SIM: dict[str, Any] = {
    "seed": 5,
    "default": {"ttft_seconds": 0.05, "per_token_seconds": 0.0, "output_tokens_mean": 500},
}
# Each call: a prompt of a few tokens plus a whole 100-token answer (the simulator's
# answers are longer than the allowance), so about 105 tokens a run against 500.
LIMIT = 500


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), SIM) as url:
        yield url


def _docs(namespace: str, sim: str) -> list[dict[str, Any]]:
    pool = samples.pool_doc(
        namespace, "p", model={"endpoint": sim, "name": "sim-small"},
        scaling={"mode": "Manual"}, replicas=0,
    )  # fmt: skip
    step = {"name": "answer", "prompt": "Say hi", "maxTokens": 100}
    meta = {"namespace": namespace, "labels": {"team": "support"}}
    workflow = {
        "apiVersion": API_VERSION, "kind": "AgentWorkflow",
        "metadata": {"name": "support", **meta},
        "spec": {"defaultPool": "p", "steps": [step]},
    }  # fmt: skip
    budget = {
        "apiVersion": API_VERSION, "kind": "AgentBudget",
        "metadata": {"name": "team", "namespace": namespace},
        "spec": {
            "workflowSelector": {"matchLabels": {"team": "support"}},
            "limits": [{"period": "Day", "tokens": LIMIT}],
            "warnAt": 0.5,
        },
    }  # fmt: skip
    return [pool, workflow, budget]


def _condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == kind), {})


def _warnings(kube: objects.ObjectStore, namespace: str) -> set[str]:
    return {
        e["reason"]
        for e in kube.list("v1", "Event", namespace=namespace)
        if e["involvedObject"]["name"] == "team" and e["type"] == "Warning"
    }


def test_a_namespace_budget_is_enforced_reported_and_lifted(
    kube: objects.ObjectStore, namespace: str, redis_url: str, sim: str, tmp_path: pathlib.Path
) -> None:
    client = sdk_sync.SyncClient(redis_url)
    spec = runtime.pool_spec(sim)
    manifest = runtime.write_pool_manifest(tmp_path / "pool.json", namespace, "p", spec)
    with (
        operator.trimtab_operator(
            namespace, redis_url, env={"TRIMTAB_STATUS_INTERVAL_SECONDS": "1"}
        ),
        runtime.worker_process(manifest, redis_url, tmp_path / "worker.log"),
    ):
        for doc in _docs(namespace, sim):
            kube.apply(doc)
        ready = kube.wait_for(
            API_VERSION, "AgentBudget", "team", namespace=namespace,
            until=lambda b: _condition(b, "Ready").get("status") == "True"
            and (b.get("status") or {}).get("workflows") == ["support"],
            timeout=30,
        )  # fmt: skip
        assert _condition(ready, "Exhausted")["status"] == "False"
        kube.wait_for(
            API_VERSION, "AgentWorkflow", "support", namespace=namespace,
            until=lambda w: _condition(w, "SpecValid").get("status") == "True", timeout=30,
        )  # fmt: skip
        # Runs one after another until one is refused: about four fit in 500 tokens.
        outcomes: list[str] = []
        first = client.submit(namespace, "support", {}, idempotency_key="order-1")
        outcomes.append(client.result(first, timeout=60).status.value)
        for _ in range(10):
            try:
                run = client.submit(namespace, "support", {})
            except sdk.BudgetExhaustedError as exc:
                refusal = str(exc)
                break
            outcomes.append(client.result(run, timeout=60).status.value)
        else:
            pytest.fail(f"ten runs were never refused: {outcomes}")
        assert "AgentBudget team (day) has used" in refusal
        assert "the window turns at" in refusal
        # A submission sent again (its reply was lost) gets the run it started.
        assert client.submit(namespace, "support", {}, idempotency_key="order-1") == first
        assert outcomes.count(wire.RunStatus.SUCCEEDED.value) >= 3
        spent = kube.wait_for(
            API_VERSION, "AgentBudget", "team", namespace=namespace,
            until=lambda b: _condition(b, "Exhausted").get("status") == "True", timeout=30,
        )["status"]  # fmt: skip
        [day] = spent["periods"]
        assert day["tokensSpent"] <= LIMIT
        assert day["tokensLimit"] == LIMIT
        assert day["tokensHeld"] == 0
        assert _condition({"status": spent}, "NearLimit")["status"] == "True"
        # A pass patches status before it posts its Events: wait for them, do not race.
        deadline = time.monotonic() + 30
        while not {"WarnAtReached", "LimitReached"} <= _warnings(kube, namespace):
            assert time.monotonic() < deadline, _warnings(kube, namespace)
            time.sleep(0.2)
        warned = prometheus_client.REGISTRY.get_sample_value(
            "trimtab_budget_warnings_total",
            {"namespace": namespace, "budget": "team", "period": "Day"},
        )
        assert warned == 1.0
        kube.delete(API_VERSION, "AgentBudget", "team", namespace)
        published = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 10
        while published.hlen(keys.budgets(namespace)):  # withdrawn by the watch event
            assert time.monotonic() < deadline, published.hgetall(keys.budgets(namespace))
            time.sleep(0.1)
        time.sleep(spending.READ_EVERY_SECONDS)  # the worker reads the definitions anew
        after = client.result(client.submit(namespace, "support", {}), timeout=60)
        assert after.status is wire.RunStatus.SUCCEEDED
