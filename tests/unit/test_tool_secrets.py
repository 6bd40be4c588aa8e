"""Tool-header Secrets: which pools' workers need which Secret keys, the environment the
worker Deployment gets, and the name the worker reads."""

from __future__ import annotations

from typing import Any

from tests.unit.test_agentpool_desired import deployment, worker
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.api.v1alpha1 import base
from trimtab.reconcile.agentworkflow import secrets
from trimtab.worker import tools


def _tool_step(name: str, secret: str, **extra: Any) -> dict[str, Any]:
    header = {"name": "Authorization", "valueFromSecret": {"name": secret, "key": "token"}}
    return {
        "name": name,
        "kind": "tool",
        "tool": {"url": "https://crm.example.com/api", "headers": [header]},
        **extra,
    }


def _spec(steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"defaultPool": "small", "steps": steps, **extra}


def test_each_pool_a_tool_step_may_run_on_gets_its_secrets() -> None:
    spec = awf.AgentWorkflowSpec.model_validate(
        _spec(
            [
                {"name": "ask", "prompt": "hi"},
                _tool_step("lookup", "crm"),
                _tool_step("notify", "chat", pool="tools", fallback={"pool": "spare"}),
            ]
        )
    )
    assert secrets.tool_secrets_by_pool(spec) == {
        "small": {("crm", "token")},
        "tools": {("chat", "token")},
        "spare": {("chat", "token")},
    }


def test_invalid_workflows_contribute_nothing() -> None:
    good = _spec([_tool_step("lookup", "crm")])
    assert secrets.raw_tool_secrets_by_pool(good) == {"small": {("crm", "token")}}
    assert secrets.raw_tool_secrets_by_pool({"steps": "not a list"}) == {}


def test_env_is_sorted_references_and_the_worker_reads_the_same_names() -> None:
    needed = {("crm", "token"), ("a-b", "c.d"), ("a", "b-c.d")}
    env = secrets.env(needed)
    refs = [e["valueFrom"]["secretKeyRef"] for e in env]
    assert refs == [{"name": n, "key": k} for n, k in sorted(needed)]
    assert len({e["name"] for e in env}) == 3  # "a"/"b-c.d" and "a-b"/"c.d" stay apart
    for entry, ref in zip(env, refs, strict=True):
        assert tools.secret_env_name(base.SecretKeyRef(**ref)) == entry["name"]


def test_the_worker_deployment_carries_the_tool_secrets() -> None:
    dep = deployment(tool_secrets=frozenset({("crm", "token")}))
    env = {e["name"]: e for e in worker(dep)["env"]}
    name = secrets.secret_env_name("crm", "token")
    assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "crm"
    assert name not in {e["name"] for e in worker(deployment())["env"]}
