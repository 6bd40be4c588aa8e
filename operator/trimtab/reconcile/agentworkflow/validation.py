"""Everything wrong with an AgentWorkflow spec that CEL in the CRD cannot check cheaply.

The apiserver's CEL rules catch local mistakes (a duplicate step name, a dangling
dependsOn). What needs the whole graph or other objects is checked here: dependency
cycles, pools that do not exist in the namespace, route expressions that do not
compile, output schemas that are not valid JSON Schema, templates that are malformed or
name a step the template cannot see, JSON bodies that are not JSON templates, and tool
URLs outside the admin's allow-list. Every problem is returned with
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
from trimtab.reconcile import policy as policy_mod
from trimtab.reconcile.agentworkflow import agent_checks, dag, templates, tool_requests


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
    if spec.inputs is not None:
        try:
            jsonschema.validators.validator_for(spec.inputs).check_schema(spec.inputs)
        except jsonschema.exceptions.SchemaError as exc:
            yield dag.Problem("spec.inputs", f"not a valid JSON Schema: {exc.message}")
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
            continue
        if step.on_failure is None:
            continue
        # The default stands in for an output the schema would have checked.
        found = jsonschema.validators.validator_for(schema)(schema).iter_errors(
            step.on_failure.output
        )
        if (first := next(iter(found), None)) is not None:
            yield dag.Problem(
                f"spec.steps[{i}].onFailure.output", f"does not fit output.schema: {first.message}"
            )


def _step_templates(step: awf.Step) -> Iterator[tuple[str, str]]:
    """(field path below the step, template) of every template the step renders."""
    for field, template in (("system", step.system), ("prompt", step.prompt)):
        if template is not None:
            yield field, template
    for name, call in step.tool_calls():
        yield f"{name}.url", call.url
        if call.body is not None:
            yield f"{name}.body", call.body
        for k, header in enumerate(call.headers):
            if header.value is not None:
                yield f"{name}.headers[{k}].value", header.value


def _key_problems(spec: awf.AgentWorkflowSpec) -> Iterator[dag.Problem]:
    """A concurrencyKey is rendered at submission, when only the inputs exist."""
    if spec.concurrency_key is None:
        return
    path = "spec.concurrencyKey.key"
    try:
        refs = templates.references(spec.concurrency_key.key)
    except templates.TemplateError as exc:
        yield dag.Problem(path, str(exc))
        return
    if not refs or any(ref.parts[0] != "inputs" for ref in refs):
        yield dag.Problem(
            path, "a key must name the run's inputs only, e.g. {{ inputs.customer_id }}"
        )


def _template_problems(spec: awf.AgentWorkflowSpec) -> Iterator[dag.Problem]:
    """A template sees `inputs` and the outputs of the steps it depends on, nothing else
    (a compensation sees its own step's output too): naming another step would fail
    every run, so it is refused here."""
    for i, step in enumerate(spec.steps):
        for field, template in _step_templates(step):
            visible = {"inputs", *step.depends_on}
            if field.startswith("compensate."):
                visible.add(step.name)
            path = f"spec.steps[{i}].{field}"
            try:
                refs = templates.references(template)
            except templates.TemplateError as exc:
                yield dag.Problem(path, str(exc))
                continue
            for name in sorted({ref.parts[0] for ref in refs} - visible):
                yield dag.Problem(
                    path,
                    f"'{name}' is not visible here: a template sees inputs and the steps "
                    f"in dependsOn ({', '.join(sorted(step.depends_on)) or 'none'})",
                )
        for name, call in step.tool_calls():
            if problem := tool_requests.body_problem(call):
                yield dag.Problem(f"spec.steps[{i}].{name}.body", problem)
            for k, header in enumerate(call.headers):
                if problem := tool_requests.header_problem(header):
                    yield dag.Problem(f"spec.steps[{i}].{name}.headers[{k}].value", problem)


def _tool_url_problems(
    spec: awf.AgentWorkflowSpec, policy: policy_mod.Policy
) -> Iterator[dag.Problem]:
    for path, call, _ in awf.http_calls(spec):
        if not policy.allows_tool_url(call.url):
            yield dag.Problem(
                f"spec.{path}.url",
                f"{tool_requests.origin(call.url)} is not an allowed tool URL here "
                "(the operator's security.allowedToolUrls)",
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


def check(spec: awf.AgentWorkflowSpec, policy: policy_mod.Policy | None = None) -> Checked:
    """`spec`'s own problems, and its plan; `policy` is the admin's (none: anything)."""
    problems = tuple(find_problems(spec, policy=policy))
    return Checked(problems, None if problems else compile_plan(spec))


def missing_pools(spec: awf.AgentWorkflowSpec, pools: Collection[str]) -> list[dag.Problem]:
    """The references to pools that do not exist in the namespace."""
    return list(_missing_pools(spec, pools))


def find_problems(
    spec: awf.AgentWorkflowSpec,
    *,
    pools: Collection[str] | None = None,
    policy: policy_mod.Policy | None = None,
) -> list[dag.Problem]:
    """Every problem of `spec`; pool existence is checked only when `pools` is given."""
    problems = dag.find_problems(step_nodes(spec))
    problems += _route_problems(spec)
    problems += _schema_problems(spec)
    problems += _template_problems(spec)
    problems += _key_problems(spec)
    problems += _tool_url_problems(spec, policy or policy_mod.Policy())
    problems += agent_checks.problems(spec)
    if pools is not None:
        problems += _missing_pools(spec, pools)
    return problems
