"""Manifests parse offline exactly as the apiserver would judge them, and every CEL rule's
Python twin agrees with the CEL text evaluated by a real CEL implementation."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from typing import Any

import cel
import pydantic
import pytest

from tests.harness import samples
from trimtab.api.v1alpha1 import base, kinds, manifests
from trimtab.reconcile.agentworkflow import validation

VALID = samples.valid_docs()
INVALID = samples.invalid_samples()
ALL_RULES = [rule for model in samples.api_models() for rule in model.CEL]
CEL_MESSAGES = {rule.message for rule in ALL_RULES}


@pytest.mark.parametrize(("name", "doc"), VALID, ids=[n for n, _ in VALID])
def test_valid_samples_parse_and_round_trip(name: str, doc: dict[str, Any]) -> None:
    parsed = manifests.parse(doc)
    assert parsed.metadata.name == doc["metadata"]["name"]
    assert manifests.parse(parsed.to_wire()) == parsed


@pytest.mark.parametrize(("name", "doc"), VALID, ids=[n for n, _ in VALID])
def test_valid_workflows_have_no_problems(name: str, doc: dict[str, Any]) -> None:
    parsed = manifests.parse(doc)
    if isinstance(parsed, manifests.AgentWorkflow):
        assert validation.find_problems(parsed.spec, pools=samples.sample_pool_names()) == []


def test_there_are_at_least_25_invalid_samples_of_each_judge() -> None:
    assert len(INVALID) >= 25
    assert {s.rejected_by for s in INVALID} == {"apiserver", "validation"}


@pytest.mark.parametrize("sample", INVALID, ids=[s.name for s in INVALID])
def test_invalid_samples_are_refused_offline(sample: samples.InvalidSample) -> None:
    if sample.rejected_by == "apiserver":
        with pytest.raises(pydantic.ValidationError) as err:
            manifests.parse(sample.doc)
        if sample.expect in CEL_MESSAGES:
            assert sample.expect in str(err.value)
    elif sample.doc["kind"] == "AgentPool":  # the operator's parse refuses it
        with pytest.raises(pydantic.ValidationError, match=re.escape(sample.expect)):
            manifests.parse(sample.doc)
    else:
        parsed = manifests.parse(sample.doc)
        assert isinstance(parsed, manifests.AgentWorkflow)
        problems = validation.find_problems(parsed.spec, pools=samples.sample_pool_names())
        assert any(sample.expect in p.message for p in problems), problems


def test_unknown_kind_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not a Trimtab manifest: kind 'Deployment'"):
        manifests.parse({"kind": "Deployment"})


def _model_in(annotation: Any) -> type[base.Model] | None:
    """The API model a field holds (directly, optionally, or as list items), if any."""
    if isinstance(annotation, type) and issubclass(annotation, base.Model):
        return annotation
    if typing.get_origin(annotation) in (list, types.UnionType, typing.Union):
        return next((m for a in typing.get_args(annotation) if (m := _model_in(a))), None)
    return None


def _pairs(cls: type[base.Model], doc: Any) -> Iterator[tuple[type[base.Model], Any]]:
    """Every (model class, sub-document) in `doc`, depth first."""
    if not isinstance(doc, dict):
        return
    yield cls, doc
    for name, field in cls.model_fields.items():
        sub_cls = _model_in(field.annotation)
        value = doc.get(field.alias or name)
        if sub_cls is None or value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            yield from _pairs(sub_cls, item)


def _fields_valid(cls: type[base.Model], sub: Any) -> base.Model | None:
    """`sub` as a model when its fields are valid (rules aside); rules only apply then."""
    try:
        return cls.model_validate(sub, context={base.SKIP_CEL: True})
    except pydantic.ValidationError:
        return None


def _rule_cases() -> Iterator[Any]:
    docs = [d for _, d in VALID] + [s.doc for s in INVALID]
    specs = {kind.kind: kind.spec for kind in kinds.KINDS}
    seen = set()
    for doc in docs:
        for cls, sub in _pairs(specs[doc["kind"]], doc.get("spec")):
            obj = _fields_valid(cls, sub)
            for rule in cls.CEL if obj is not None else ():
                key = (rule.rule, repr(sub))
                if key not in seen:
                    seen.add(key)
                    yield pytest.param(rule, obj, id=f"{cls.__name__}:{len(seen)}")


RULE_CASES = list(_rule_cases())


def test_every_rule_is_exercised_both_ways() -> None:
    outcomes: dict[str, set[bool]] = {}
    for case in RULE_CASES:
        rule, obj = case.values
        outcomes.setdefault(rule.rule, set()).add(rule.check(obj))
    both_ways = {r for r, seen in outcomes.items() if seen == {True, False}}
    assert both_ways == {rule.rule for rule in ALL_RULES}


@pytest.mark.parametrize(("rule", "obj"), RULE_CASES)
def test_python_twin_agrees_with_cel(rule: base.CelRule, obj: base.Model) -> None:
    assert rule.check(obj) is cel.evaluate(rule.rule, {"self": obj.to_wire()}), rule.rule
