"""The Argo CD health checks (manifests/argocd/health/*.lua), run in a real Lua
interpreter (lupa) against objects in each state, as Argo CD runs them: the object in
the global `obj`, the health as the returned table."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
import yaml
from lupa import LuaRuntime

ROOT = pathlib.Path(__file__).resolve().parents[2]
HEALTH = ROOT / "manifests" / "argocd" / "health"


def script(kind: str) -> str:
    """The check as hack/generate.py ships it: the shared start, then the kind's part."""
    return (HEALTH / "_common.lua").read_text() + (HEALTH / f"{kind.lower()}.lua").read_text()


def health(kind: str, obj: dict[str, Any]) -> dict[str, str]:
    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(script(kind))
    return dict(result)


def _obj(generation: int = 2, observed: int | None = 2, **status: Any) -> dict[str, Any]:
    conditions = [{"type": t, "status": s, "message": f"{t} is {s}"} for t, s in
                  status.pop("conditions", {}).items()]  # fmt: skip
    body: dict[str, Any] = {"metadata": {"name": "x", "generation": generation}}
    if conditions or status or observed is not None:
        body["status"] = {"conditions": conditions, **status}
        if observed is not None:
            body["status"]["observedGeneration"] = observed
    return body


POOL_CASES = [
    ({"conditions": {"Ready": "True", "SpecValid": "True"}}, "Healthy"),
    ({"conditions": {"Ready": "True"}, "breaker": "Closed"}, "Healthy"),
    ({"conditions": {"Ready": "False"}}, "Progressing"),
    ({"observed": 1, "conditions": {"Ready": "True"}}, "Progressing"),
    ({"observed": None}, "Progressing"),
    ({"conditions": {"SpecValid": "False", "Ready": "False"}}, "Degraded"),
    ({"conditions": {"Ready": "True"}, "breaker": "Open"}, "Degraded"),
    ({"conditions": {"Ready": "True"}, "breaker": "HalfOpen"}, "Healthy"),
    ({"conditions": {"SpotFallback": "True", "Ready": "False"}}, "Degraded"),
    ({"conditions": {"SpotFallback": "True", "Ready": "True"}}, "Healthy"),
]


@pytest.mark.parametrize(
    ("fields", "want"),
    POOL_CASES,
    ids=[
        "ready",
        "ready-breaker-closed",
        "scaling",
        "old-generation",
        "no-status-yet",
        "invalid-spec",
        "breaker-open",
        "breaker-half-open",
        "fallback-stuck",
        "fallback-working",
    ],
)
def test_agentpool_health(fields: dict[str, Any], want: str) -> None:
    got = health("AgentPool", _obj(**fields))
    assert got["status"] == want
    assert isinstance(got["message"], str)


@pytest.mark.parametrize(
    ("fields", "want"),
    [
        ({"conditions": {"Ready": "True", "SpecValid": "True", "PoolsReady": "True"}}, "Healthy"),
        ({"conditions": {"SpecValid": "True", "PoolsReady": "False"}}, "Progressing"),
        ({"conditions": {"SpecValid": "False"}}, "Degraded"),
        ({"observed": 1, "conditions": {"Ready": "True"}}, "Progressing"),
        ({"observed": None}, "Progressing"),
    ],
    ids=["ready", "waiting-for-pools", "cycle-or-missing-pool", "old-generation", "no-status"],
)
def test_agentworkflow_health(fields: dict[str, Any], want: str) -> None:
    assert health("AgentWorkflow", _obj(**fields))["status"] == want


def test_a_degraded_workflow_says_why() -> None:
    obj = _obj(conditions={"SpecValid": "False"})
    obj["status"]["conditions"][0]["message"] = "dependency cycle: a -> b -> a"
    assert health("AgentWorkflow", obj)["message"] == "dependency cycle: a -> b -> a"


def test_the_argocd_snippet_registers_exactly_these_checks() -> None:
    snippet = yaml.safe_load((ROOT / "manifests" / "argocd" / "argocd-cm-health.yaml").read_text())
    assert snippet["data"] == {
        "resource.customizations.health.trimtab.io_AgentPool": script("AgentPool"),
        "resource.customizations.health.trimtab.io_AgentWorkflow": script("AgentWorkflow"),
    }


def test_applications_sync_server_side_and_ignore_scaled_replicas() -> None:
    chart = yaml.safe_load((ROOT / "manifests" / "argocd" / "application-chart.yaml").read_text())
    assert "ServerSideApply=true" in chart["spec"]["syncPolicy"]["syncOptions"]
    assert (ROOT / chart["spec"]["source"]["path"] / "Chart.yaml").exists()
    apps = yaml.safe_load((ROOT / "manifests" / "argocd" / "application-samples.yaml").read_text())
    assert {"group": "trimtab.io", "kind": "AgentPool", "jsonPointers": ["/spec/replicas"]} in apps[
        "spec"
    ]["ignoreDifferences"]
    assert "RespectIgnoreDifferences=true" in apps["spec"]["syncPolicy"]["syncOptions"]
