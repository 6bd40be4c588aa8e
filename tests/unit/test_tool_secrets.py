"""Tool-header Secrets: which pools' workers need which Secret keys, the volume the
worker Deployment mounts, and the files the worker reads."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from tests.unit.test_agentpool_desired import deployment, worker
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.reconcile.agentworkflow import secrets
from trimtab.worker import errors, tools

CRM_TOKEN = {"name": "crm", "key": "token"}


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


def test_the_volume_is_sorted_optional_sources_and_the_worker_reads_the_same_files(
    tmp_path: pathlib.Path,
) -> None:
    needed = {("crm", "token"), ("crm", "a.b"), ("chat", "x-y")}
    (volume,) = secrets.volumes(needed)
    sources = [s["secret"] for s in volume["projected"]["sources"]]
    assert [s["name"] for s in sources] == ["chat", "crm"]
    assert all(s["optional"] is True for s in sources)  # a missing Secret is no outage
    crm = sources[1]["items"]
    assert crm == [{"key": "a.b", "path": "crm/a.b"}, {"key": "token", "path": "crm/token"}]
    # The worker reads what the kubelet writes there, at each call.
    (tmp_path / "crm").mkdir()
    (tmp_path / "crm" / "token").write_text("s3cret")
    tool = awf.ToolCall.model_validate(
        {
            "url": "https://crm.example.com/api",
            "headers": [
                {"name": "Authorization", "valueFromSecret": {"name": "crm", "key": "token"}}
            ],
        }
    )
    assert tools.header_secrets(tool, tmp_path) == {("crm", "token"): "s3cret"}
    assert secrets.volumes(set()) == []
    assert secrets.volume_mounts(set()) == []


def test_a_header_secret_that_is_not_mounted_fails_the_step_naming_it(
    tmp_path: pathlib.Path,
) -> None:
    tool = awf.ToolCall.model_validate(
        {
            "url": "https://crm.example.com/api",
            "headers": [
                {"name": "Authorization", "valueFromSecret": {"name": "crm", "key": "token"}}
            ],
        }
    )
    with pytest.raises(errors.SecretMissingError, match="Secret crm has no key token") as info:
        tools.header_secrets(tool, tmp_path)
    assert info.value.retryable is False
    assert info.value.secret == ("crm", "token")


def test_the_worker_deployment_mounts_the_tool_secrets() -> None:
    dep = deployment(tool_secrets=frozenset({("crm", "token")}))
    pod = dep["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == secrets.VOLUME]
    assert volume["projected"]["sources"][0]["secret"]["name"] == "crm"
    mounts = {m["name"]: m for m in worker(dep)["volumeMounts"]}
    assert mounts[secrets.VOLUME] == {
        "name": secrets.VOLUME,
        "mountPath": secrets.MOUNT_DIR,
        "readOnly": True,
    }
    # No Secret reaches the environment, and a pool without tool Secrets mounts none.
    assert not [e for e in worker(dep)["env"] if "valueFrom" in e and "crm" in str(e)]
    bare = deployment()["spec"]["template"]["spec"]
    assert secrets.VOLUME not in {v["name"] for v in bare["volumes"]}
