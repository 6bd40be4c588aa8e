"""Pydantic models to CustomResourceDefinitions with structural schemas.

Pydantic emits JSON Schema (2020-12); the apiserver wants a structural OpenAPI v3
subset. This module bridges the two: `$ref`s inlined, Optional as `nullable`,
`exclusiveMinimum` in its boolean OpenAPI form, no titles, no `additionalProperties:
false` (unknown fields are refused by strict field validation and pruned otherwise),
`const` as a one-value enum. Everything else (descriptions, defaults, bounds, enums,
CEL rules, list-map keys) passes through from the models.
"""

from __future__ import annotations

import copy
from typing import Any

import pydantic
import yaml

from trimtab.api.v1alpha1 import kinds

Schema = dict[str, Any]
_DROP = {"title", "$defs"}


def _is_null(node: Schema) -> bool:
    return node.get("type") == "null"


def _merge_ref(node: Schema, defs: dict[str, Schema]) -> Schema:
    """Replace a `$ref` (or single-item allOf) with the definition, keeping sibling keys."""
    node = dict(node)
    if "allOf" in node and len(node["allOf"]) == 1:
        node.update(node.pop("allOf")[0])
    ref = node.pop("$ref", None)
    if ref is None:
        return node
    target = copy.deepcopy(defs[ref.rsplit("/", 1)[-1]])
    target.update({k: v for k, v in node.items() if k != "description" or v})
    return target


def _unwrap_optional(node: Schema) -> Schema:
    """`anyOf: [X, null]` becomes X with `nullable: true`."""
    options = node.get("anyOf")
    if not options or not any(_is_null(o) for o in options):
        return node
    rest = [o for o in options if not _is_null(o)]
    if len(rest) != 1:
        raise ValueError(f"only Optional[X] unions are supported, got {options}")
    out = {k: v for k, v in node.items() if k != "anyOf"}
    out.update(rest[0])
    out["nullable"] = True
    return out


def _openapi_bounds(node: Schema) -> None:
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = node.get(bound)
        if isinstance(value, int | float) and not isinstance(value, bool):
            node[plain] = value
            node[bound] = True


def structural(node: Schema, defs: dict[str, Schema]) -> Schema:
    """The structural form of one schema node, recursively."""
    node = _merge_ref(_unwrap_optional(_merge_ref(node, defs)), defs)
    if "anyOf" in node or "oneOf" in node:
        raise ValueError(f"unions are not structural: {node}")
    out: Schema = {}
    for key, value in node.items():
        if key in _DROP or (key == "additionalProperties" and value is False):
            continue
        if key == "default" and value is None:
            continue  # a null default would be stored; absent is what None means
        if key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = structural(value, defs)
        else:
            out[key] = value
    _openapi_bounds(out)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


class _FactoryDefaults(pydantic.json_schema.GenerateJsonSchema):
    """Emit defaults made by default_factory, in full wire form.

    The apiserver needs them to create an omitted object (`scaling`, `queue`, ...) and
    validates each default against the CEL rules as written, so `{}` would not do.
    Empty lists and maps stay without a default: absent already means empty.
    """

    def get_default_value(self, schema: Any) -> Any:
        factory = schema.get("default_factory")
        if factory is None or schema.get("default_factory_takes_data"):
            return super().get_default_value(schema)
        value = factory()
        if isinstance(value, pydantic.BaseModel):
            return value.model_dump(by_alias=True, exclude_none=True, mode="json")
        return value or pydantic.json_schema.NoDefault


def model_schema(model: type[pydantic.BaseModel]) -> Schema:
    raw = model.model_json_schema(
        by_alias=True, mode="validation", schema_generator=_FactoryDefaults
    )
    return structural(raw, raw.get("$defs", {}))


def _object_schema(kind: kinds.Kind) -> Schema:
    return {
        "type": "object",
        "description": (kind.spec.__doc__ or "").strip().replace("Desired state of an ", "An "),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": model_schema(kind.spec),
            "status": model_schema(kind.status),
        },
        "x-kubernetes-validations": [kind.name_rule],
    }


def _columns(kind: kinds.Kind) -> list[Schema]:
    cols = []
    for c in kind.columns:
        col: Schema = {"name": c.name, "type": c.type, "jsonPath": c.json_path}
        if c.description:
            col["description"] = c.description
        if c.priority:
            col["priority"] = c.priority
        cols.append(col)
    return cols


def _subresources(kind: kinds.Kind) -> Schema:
    sub: Schema = {"status": {}}
    if kind.scale is not None:
        sub["scale"] = {
            "specReplicasPath": kind.scale.spec_replicas,
            "statusReplicasPath": kind.scale.status_replicas,
            "labelSelectorPath": kind.scale.label_selector,
        }
    return sub


def crd(kind: kinds.Kind) -> Schema:
    """The CustomResourceDefinition of `kind`."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.crd_name, "labels": {"app.kubernetes.io/part-of": "trimtab"}},
        "spec": {
            "group": kind.group,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": list(kind.categories),
            },
            "versions": [
                {
                    "name": kind.version,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": _object_schema(kind)},
                    "subresources": _subresources(kind),
                    "additionalPrinterColumns": _columns(kind),
                }
            ],
        },
    }


def all_crds() -> list[Schema]:
    return [crd(k) for k in kinds.KINDS]


HEADER = "# Generated by hack/generate.py from trimtab.api.v1alpha1. Do not edit.\n"


def file_name(crd_doc: Schema) -> str:
    """Where the CRD is checked in, relative to the repository: crds/<group>_<plural>.yaml."""
    spec = crd_doc["spec"]
    return f"crds/{spec['group']}_{spec['names']['plural']}.yaml"


def render(crd_doc: Schema) -> str:
    return HEADER + yaml.safe_dump(crd_doc, sort_keys=False, width=100)
