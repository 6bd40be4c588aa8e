"""Building blocks shared by both kinds: the model base, conditions, and Kubernetes
types that Trimtab passes through to the objects it creates.

Field names are snake_case in Python and camelCase on the wire; unknown fields are
errors, as the apiserver's strict field validation makes them. Cross-field rules are
declared once with `cel_rules`: the CEL text goes into the CRD for the apiserver, and
the same rule's Python predicate runs when a manifest is parsed without a cluster.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

import pydantic
from pydantic import alias_generators

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
NAME_MAX = 63
URL_PATTERN = r"^https?://[^\s/?#]+([/?#][^\s]*)?$"
URL_MAX = 2048
K8S_KEY_MAX = 253
SKIP_CEL = "skip_cel"


@dataclasses.dataclass(frozen=True)
class CelRule:
    """A cross-field rule: CEL for the apiserver, a Python predicate for offline parsing."""

    rule: str
    message: str
    check: Callable[[Any], bool]
    field_path: str | None = None

    def schema(self) -> dict[str, str]:
        out = {"rule": self.rule, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        return out


def _add_cel_rules(schema: dict[str, Any], cls: type[Any]) -> None:
    rules: tuple[CelRule, ...] = getattr(cls, "CEL", ())
    if rules:
        schema["x-kubernetes-validations"] = [r.schema() for r in rules]


class Model(pydantic.BaseModel):
    """Base of every API type: camelCase aliases, strict about unknown fields, and the
    class's `CEL` rules both in its JSON schema and checked on validation."""

    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        json_schema_extra=_add_cel_rules,
    )
    CEL: ClassVar[tuple[CelRule, ...]] = ()

    @pydantic.model_validator(mode="after")
    def _check_cel_rules(self, info: pydantic.ValidationInfo) -> Model:
        # Tests pass skip_cel to compare each Python twin with its CEL text directly.
        if isinstance(info.context, dict) and info.context.get(SKIP_CEL):
            return self
        for rule in type(self).CEL:
            if not rule.check(self):
                raise ValueError(rule.message)
        return self

    def to_wire(self) -> dict[str, Any]:
        """The object as it appears in YAML: camelCase, unset fields omitted."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


Name = Annotated[str, pydantic.Field(min_length=1, max_length=NAME_MAX, pattern=NAME_PATTERN)]
Url = Annotated[str, pydantic.Field(min_length=1, max_length=URL_MAX, pattern=URL_PATTERN)]
LabelValue = Annotated[str, pydantic.Field(max_length=NAME_MAX)]
Labels = dict[str, LabelValue]
IntOrString = Annotated[int | str, pydantic.WithJsonSchema({"x-kubernetes-int-or-string": True})]
FreeForm = Annotated[
    dict[str, Any],
    pydantic.WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
# Any JSON value (object, array, string, number, boolean), kept as given.
AnyJSON = Annotated[Any, pydantic.WithJsonSchema({"x-kubernetes-preserve-unknown-fields": True})]


class SecretKeyRef(Model):
    """A key of a Secret in the resource's namespace. Its value never appears in status,
    events or logs."""

    name: str = pydantic.Field(
        min_length=1,
        max_length=K8S_KEY_MAX,
        pattern=SUBDOMAIN_PATTERN,
        description="Name of the Secret.",
    )
    key: str = pydantic.Field(
        min_length=1,
        max_length=K8S_KEY_MAX,
        # Kubernetes' own rule for a Secret's keys, "." and ".." excluded (no lookahead:
        # the apiserver's patterns are RE2).
        pattern=r"^([-_a-zA-Z0-9]|\.[-_a-zA-Z0-9]|\.\.[-._a-zA-Z0-9])[-._a-zA-Z0-9]*$",
        description="Key within the Secret.",
    )


class EnvVar(Model):
    """An environment variable for the worker container (a subset of core/v1 EnvVar)."""

    # Where traces go is the cluster admin's choice (the operator passes its own
    # OTEL_* settings on): a pool's author may not send them, with run attributes, to a
    # host nobody allowed, nor turn the SDK's behaviour in workers.
    CEL = (
        CelRule(
            rule="!self.name.startsWith('OTEL_')",
            message="OTEL_* variables are set by the operator (the admin's tracing settings)",
            check=lambda e: not e.name.startswith("OTEL_"),
        ),
    )

    name: str = pydantic.Field(
        min_length=1,
        max_length=K8S_KEY_MAX,
        pattern=r"^[-._a-zA-Z]"
        r"[-._a-zA-Z0-9]*$",
        description="Variable name.",
    )
    value: str | None = pydantic.Field(default=None, max_length=32768, description="Literal value.")
    value_from: FreeForm | None = pydantic.Field(
        default=None,
        description="Source for the value (core/v1 EnvVarSource), e.g. "
        "secretKeyRef or configMapKeyRef.",
    )


class ResourceRequirements(Model):
    """Compute resources of the worker container (core/v1 ResourceRequirements)."""

    requests: dict[str, IntOrString] | None = pydantic.Field(
        default=None, description="Minimum resources, e.g. cpu: 250m, memory: 256Mi."
    )
    limits: dict[str, IntOrString] | None = pydantic.Field(
        default=None, description="Maximum resources."
    )


class Toleration(Model):
    """A core/v1 Toleration."""

    key: str | None = pydantic.Field(default=None, max_length=K8S_KEY_MAX)
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = pydantic.Field(default=None, max_length=NAME_MAX)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(Model):
    """The standard Kubernetes condition (metav1.Condition)."""

    type: str = pydantic.Field(max_length=316, description="Condition type, e.g. Ready.")
    status: ConditionStatus
    reason: str = pydantic.Field(max_length=1024, description="CamelCase reason.")
    message: str = pydantic.Field(default="", max_length=32768)
    last_transition_time: datetime.datetime
    observed_generation: int | None = pydantic.Field(default=None, ge=0)


Conditions = Annotated[
    list[Condition],
    pydantic.Field(
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    ),
]
