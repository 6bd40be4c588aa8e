"""No API field without effect: every field of the kinds' specs is read by some code
outside the API package (as `.field_name`), or is named below with where it goes.
A field added to the models and never read fails here before users are promised it."""

from __future__ import annotations

import pathlib
import re
import typing
from collections.abc import Iterator

from pydantic import BaseModel

from trimtab.api.v1alpha1 import agentbudget, agentpool, agentworkflow, kinds

SOURCE = pathlib.Path(__file__).resolve().parents[2] / "operator" / "trimtab"
# Fields whose value reaches its destination whole, never read one by one.
PASSED_THROUGH = {
    # Kubernetes types the pod builder copies into the worker's pod as they are.
    "AgentPool.spec.worker.resources.limits",
    "AgentPool.spec.worker.env.valueFrom",
    "AgentPool.spec.placement.custom.spotTolerations.effect",
    "AgentPool.spec.placement.custom.spotTolerations.tolerationSeconds",
}


def _column_paths() -> set[str]:
    """Spec fields shown by `kubectl get` (printer columns), as dotted paths."""
    out = set()
    for kind in kinds.KINDS:
        for column in kind.columns:
            if column.json_path.startswith(".spec."):
                out.add(f"{kind.kind}{column.json_path}")
    return out


def _models(annotation: object) -> Iterator[type[BaseModel]]:
    """The models in an annotation: itself, or inside list[...], X | None and the like."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models(arg)


def _fields(model: type[BaseModel], path: str, seen: set[type]) -> Iterator[tuple[str, str]]:
    """(dotted path by the API's names, Python attribute) of every field, depth first."""
    if model in seen:
        return
    seen.add(model)
    for name, field in model.model_fields.items():
        where = f"{path}.{field.alias or name}"
        yield where, name
        for inner in _models(field.annotation):
            yield from _fields(inner, where, seen)


def test_every_spec_field_is_read_or_passed_through() -> None:
    code = "\n".join(
        p.read_text() for p in SOURCE.rglob("*.py") if "api" not in p.relative_to(SOURCE).parts
    )
    shown = _column_paths()
    seen: set[type] = set()
    found = [
        *_fields(agentpool.AgentPoolSpec, "AgentPool.spec", seen),
        *_fields(agentworkflow.AgentWorkflowSpec, "AgentWorkflow.spec", seen),
        *_fields(agentbudget.AgentBudgetSpec, "AgentBudget.spec", seen),
    ]
    assert len(found) > 100  # the walk reached the nested models
    unread = [
        where
        for where, attribute in found
        if where not in PASSED_THROUGH
        and where not in shown
        and not re.search(rf"\.{attribute}\b", code)
    ]
    assert unread == []


def test_the_exceptions_are_still_fields() -> None:
    seen: set[type] = set()
    paths = {
        where
        for spec, root in (
            (agentpool.AgentPoolSpec, "AgentPool.spec"),
            (agentworkflow.AgentWorkflowSpec, "AgentWorkflow.spec"),
            (agentbudget.AgentBudgetSpec, "AgentBudget.spec"),
        )
        for where, _ in _fields(spec, root, seen)
    }
    assert paths >= PASSED_THROUGH | _column_paths()
