"""The CRDs are generated from the models, structural, and identical to crds/."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

from trimtab.api import crdgen
from trimtab.api.v1alpha1 import kinds

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRDS = {c["spec"]["names"]["kind"]: c for c in crdgen.all_crds()}


def _schema(kind: str) -> dict[str, Any]:
    return dict(CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def _nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _nodes(node[key], f"{path}[{key}]")


ENVELOPE = {".apiVersion", ".kind"}  # plain strings by Kubernetes convention
ALL_NODES = [
    pytest.param(n, id=f"{k}{p}") for k in CRDS for p, n in _nodes(_schema(k)) if p not in ENVELOPE
]


@pytest.mark.parametrize("crd", crdgen.all_crds(), ids=lambda c: c["metadata"]["name"])
def test_checked_in_crds_match_generation(crd: dict[str, Any]) -> None:
    checked_in = (ROOT / crdgen.file_name(crd)).read_text()
    assert checked_in == crdgen.render(crd), "crds/ is stale: run `make generate`"


@pytest.mark.parametrize("node", ALL_NODES)
def test_every_node_is_structural(node: dict[str, Any]) -> None:
    for banned in ("$ref", "anyOf", "oneOf", "allOf", "title", "$defs", "const"):
        assert banned not in node
    assert node.get("additionalProperties") is not False
    free_form = node.get("x-kubernetes-int-or-string") or node.get(
        "x-kubernetes-preserve-unknown-fields"
    )
    assert free_form or "type" in node
    if "properties" in node:
        assert node["type"] == "object"
    for bound in ("exclusiveMinimum", "exclusiveMaximum"):
        assert node.get(bound, True) is True


@pytest.mark.parametrize("node", ALL_NODES)
def test_lists_and_strings_are_bounded_for_cel_cost(node: dict[str, Any]) -> None:
    if node.get("type") == "array":
        assert "maxItems" in node
    if node.get("type") == "string" and node.get("format") != "date-time":
        assert "maxLength" in node or "enum" in node


def test_optional_fields_are_nullable_without_null_defaults() -> None:
    spec = _schema("AgentWorkflow")["properties"]["spec"]["properties"]
    assert spec["defaultPool"]["nullable"] is True
    assert "default" not in spec["defaultPool"]
    assert spec["state"]["properties"]["ttlSeconds"]["default"] == 86400


@pytest.mark.parametrize("kind", list(CRDS))
def test_conditions_are_a_list_map_keyed_by_type(kind: str) -> None:
    conditions = _schema(kind)["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) >= {"type", "status", "reason"}


def test_cross_field_rules_reach_the_schema() -> None:
    spec = _schema("AgentWorkflow")["properties"]["spec"]
    messages = {v["message"] for v in spec["x-kubernetes-validations"]}
    assert "step names must be unique" in messages
    step_rules = {
        v["message"] for v in spec["properties"]["steps"]["items"]["x-kubernetes-validations"]
    }
    assert "a step cannot depend on itself" in step_rules
    scaling = _schema("AgentPool")["properties"]["spec"]["properties"]["scaling"]
    assert scaling["x-kubernetes-validations"][0]["rule"] == "self.minReplicas <= self.maxReplicas"


@pytest.mark.parametrize(
    ("kind", "short", "columns"),
    [
        pytest.param(
            kinds.AGENT_POOL,
            "apool",
            ["Ready", "Tier", "Replicas", "Queue", "P95", "Capacity", "Age"],
            id="pool",
        ),
        pytest.param(
            kinds.AGENT_WORKFLOW,
            "awf",
            ["Ready", "Steps", "Runs", "P95", "Cost", "Age"],
            id="workflow",
        ),
    ],
)
def test_names_columns_and_categories(kind: kinds.Kind, short: str, columns: list[str]) -> None:
    crd = crdgen.crd(kind)
    names = crd["spec"]["names"]
    assert names["shortNames"] == [short]
    assert names["categories"] == ["trimtab", "agents"]
    version = crd["spec"]["versions"][0]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == columns
    assert "status" in version["subresources"]


def test_only_the_pool_has_a_scale_subresource() -> None:
    pool = CRDS["AgentPool"]["spec"]["versions"][0]["subresources"]
    assert pool["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert "scale" not in CRDS["AgentWorkflow"]["spec"]["versions"][0]["subresources"]


def test_structural_rejects_unions() -> None:
    with pytest.raises(ValueError, match="not structural"):
        crdgen.structural({"anyOf": [{"type": "string"}, {"type": "integer"}]}, {})
