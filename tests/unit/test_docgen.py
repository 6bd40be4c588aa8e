"""docs/api.md is current and documents every field and rule of both kinds."""

from __future__ import annotations

import pathlib

import pytest

from trimtab.api import docgen
from trimtab.api.v1alpha1 import agentpool, agentworkflow, base

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEXT = docgen.render()


def test_checked_in_reference_is_current() -> None:
    assert (ROOT / "docs" / "api.md").read_text() == TEXT, "run `make generate`"


@pytest.mark.parametrize(
    "model",
    [
        m
        for mod in (agentpool, agentworkflow)
        for m in vars(mod).values()
        if isinstance(m, type) and issubclass(m, base.Model) and m.__module__ == mod.__name__
    ],
    ids=lambda m: m.__name__,
)
def test_every_field_and_rule_is_documented(model: type[base.Model]) -> None:
    for name, field in model.model_fields.items():
        assert f"| `{field.alias or name}` |" in TEXT, name
    for rule in model.CEL:
        assert rule.message in TEXT


def test_constraints_render_readably() -> None:
    assert "| `minReplicas` | integer |  | `0` | ≥ 0; ≤ 1000 |" in TEXT
    assert "one of `OnDemand`, `Spot`, `SpotPreferred`" in TEXT
