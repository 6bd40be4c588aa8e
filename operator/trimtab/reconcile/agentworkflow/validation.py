"""Everything wrong with an AgentWorkflow spec that CEL in the CRD cannot check cheaply.

The apiserver's CEL rules catch local mistakes (a duplicate step name, a dangling
dependsOn). What needs the whole graph or other objects is checked here: dependency
cycles, pools that do not exist in the namespace, route expressions that do not
compile, output schemas that are not valid JSON Schema. Every problem is returned with
its path, so the operator's SpecValid condition can name each one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterator
from typing import Any

import cel
import jsonschema
import jsonschema.exceptions

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.reasons import Reason
from trimtab.reconcile.agentworkflow import dag


def step_nodes(spec: awf.AgentWorkflowSpec) -> list[dag.StepNode]:
    return [dag.StepNode(name=s.name, depends_on=tuple(s.depends_on)) for s in spec.steps]


def compile_plan(spec: awf.AgentWorkflowSpec) -> dag.Plan:
    """The compiled DAG; raises dag.InvalidDagError listing every graph problem."""
    return dag.compile_plan(step_nodes(spec))


def compile_route(expression: str) -> Any:
    """A compiled CEL program for a route's `when`; raises ValueError on bad syntax."""
    return cel.compile(expression)


def _route_problems(spec: awf.AgentWorkflowSpec) -> Iterator[dag.Problem]:
    for i, step in enumerate(spec.steps):
        for j, route in enumerate(step.routes or []):
            if route.when is None:
                continue
            try:
                compile_route(route.when)
            except ValueError as exc:
                first = str(exc).splitlines()[0]
                yield dag.Problem(
                    f"spec.steps[{i}].routes[{j}].when",
                    f"route expression does not compile: {first}",
                )


def _schema_problems(spec: awf.AgentWorkflowSpec) -> Iterator[dag.Problem]:
    for i, step in enumerate(spec.steps):
        schema = step.output.json_schema if step.output else None
        if schema is None:
            continue
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.exceptions.SchemaError as exc:
            yield dag.Problem(
                f"spec.steps[{i}].output.schema", f"not a valid JSON Schema: {exc.message}"
            )


def pool_references(spec: awf.AgentWorkflowSpec) -> Iterator[tuple[str, str]]:
    """Every (path, pool name) the workflow refers to."""
    if spec.default_pool:
        yield "spec.defaultPool", spec.default_pool
    if spec.budget and spec.budget.degrade_pool:
        yield "spec.budget.degradePool", spec.budget.degrade_pool
    for i, step in enumerate(spec.steps):
        if step.pool:
            yield f"spec.steps[{i}].pool", step.pool
        for j, route in enumerate(step.routes or []):
            yield f"spec.steps[{i}].routes[{j}].pool", route.pool
        if step.fallback and step.fallback.pool:
            yield f"spec.steps[{i}].fallback.pool", step.fallback.pool


def _missing_pools(spec: awf.AgentWorkflowSpec, pools: Collection[str]) -> Iterator[dag.Problem]:
    for path, name in pool_references(spec):
        if name not in pools:
            message = f'AgentPool "{name}" does not exist in this namespace'
            yield dag.Problem(path, message, Reason.MISSING_POOL)


@dataclasses.dataclass(frozen=True)
class Checked:
    """What a spec's own content says of it (pools aside): its problems, and its plan
    when it has none. Decided once per generation."""

    problems: tuple[dag.Problem, ...]
    plan: dag.Plan | None


def check(spec: awf.AgentWorkflowSpec) -> Checked:
    problems = tuple(find_problems(spec))
    return Checked(problems, None if problems else compile_plan(spec))


def missing_pools(spec: awf.AgentWorkflowSpec, pools: Collection[str]) -> list[dag.Problem]:
    """The references to pools that do not exist in the namespace."""
    return list(_missing_pools(spec, pools))


def find_problems(
    spec: awf.AgentWorkflowSpec, *, pools: Collection[str] | None = None
) -> list[dag.Problem]:
    """Every problem of `spec`; pool existence is checked only when `pools` is given."""
    problems = dag.find_problems(step_nodes(spec))
    problems += _route_problems(spec)
    problems += _schema_problems(spec)
    if pools is not None:
        problems += _missing_pools(spec, pools)
    return problems
