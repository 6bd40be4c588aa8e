"""The checked-in sample manifests, valid and invalid, as test data."""

from __future__ import annotations

import dataclasses
import pathlib
import re
from typing import Any

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "manifests" / "samples"
SIM_MODEL = {"endpoint": "http://sim.local:8080/v1", "name": "sim-small"}


def pool_doc(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    """An AgentPool manifest; `spec` fields override a model endpoint nobody calls."""
    return {
        "apiVersion": "trimtab.io/v1alpha1",
        "kind": "AgentPool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"model": dict(SIM_MODEL), **spec},
    }


@dataclasses.dataclass(frozen=True)
class InvalidSample:
    name: str
    doc: dict[str, Any]
    rejected_by: str  # "apiserver" or "validation"
    expect: str


def valid_docs() -> list[tuple[str, dict[str, Any]]]:
    return [(p.stem, yaml.safe_load(p.read_text())) for p in sorted(SAMPLES.glob("*.yaml"))]


def invalid_samples() -> list[InvalidSample]:
    out = []
    for path in sorted((SAMPLES / "invalid").glob("*.yaml")):
        text = path.read_text()
        by = re.search(r"^# rejected-by: (\w+)$", text, re.M)
        expect = re.search(r"^# expect: (.+)$", text, re.M)
        assert by, f"{path.name} needs a '# rejected-by:' line"
        assert expect, f"{path.name} needs an '# expect:' line"
        out.append(InvalidSample(path.stem, yaml.safe_load(text), by.group(1), expect.group(1)))
    return out


def sample_pool_names() -> set[str]:
    return {d["metadata"]["name"] for _, d in valid_docs() if d["kind"] == "AgentPool"}


def api_models() -> list[type[Any]]:
    """Every API model class defined in the kinds' modules and their shared base."""
    from trimtab.api.v1alpha1 import agentbudget, agentpool, agentworkflow, base  # noqa: PLC0415

    return [
        obj
        for module in (agentpool, agentworkflow, agentbudget, base)
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, base.Model)
        and obj.__module__ == module.__name__
    ]
