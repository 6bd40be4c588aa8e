"""docs/api.md is current and documents every field and rule of both kinds."""

from __future__ import annotations

import pathlib

import pytest

from tests.harness import samples
from trimtab.api import docgen
from trimtab.api.v1alpha1 import base

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEXT = docgen.render()


def test_checked_in_reference_is_current() -> None:
    assert (ROOT / "docs" / "api.md").read_text() == TEXT, "run `make generate`"


@pytest.mark.parametrize("model", samples.api_models(), ids=lambda m: m.__name__)
def test_every_field_and_rule_is_documented(model: type[base.Model]) -> None:
    for name, field in model.model_fields.items():
        assert f"| `{field.alias or name}` |" in TEXT, name
    for rule in model.CEL:
        assert rule.message in TEXT


def test_constraints_render_readably() -> None:
    assert "| `minReplicas` | integer |  | `0` | ≥ 0; ≤ 1000 |" in TEXT
    assert "one of `OnDemand`, `Spot`, `SpotPreferred`" in TEXT
