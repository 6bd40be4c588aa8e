"""A workflow compiled for the runtime: the spec, its DAG plan, each step's pool or
compiled routes. Validated once per generation, by whoever publishes it (the operator,
or the SDK without a cluster); published to Redis as a document (spec + generation).
Readers decode the document without validating it again and compile its route
programs (compiled CEL does not cross a process), once per generation per process
(trimtab.queue.workflows.Compiled).

Routes are CEL over `inputs` and the outputs of the step's dependencies, compiled once
per generation. A route whose expression fails to evaluate (say, a field the output
lacks) does not match; the last route, which has no `when`, always does.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.reconcile.agentworkflow import dag, validation

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CompiledStep:
    spec: awf.Step
    dependencies: tuple[str, ...]
    dependents: tuple[str, ...]
    pool: str | None
    routes: tuple[tuple[Any, str], ...]  # (compiled `when` or None, pool)

    @property
    def routed(self) -> bool:
        return bool(self.routes)


@dataclasses.dataclass(frozen=True)
class StandIn:
    """The output a step that gave up is done with, so its run goes on."""

    output: Any


@dataclasses.dataclass(frozen=True)
class CompiledWorkflow:
    namespace: str
    name: str
    generation: int
    spec: awf.AgentWorkflowSpec
    plan: dag.Plan
    steps: Mapping[str, CompiledStep]

    @property
    def ttl_seconds(self) -> int:
        return self.spec.state.ttl_seconds

    def route_context(
        self, step: str, inputs: Any, outputs: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """What `step`'s routes and templates see, or None while a dependency is unfinished."""
        deps = self.steps[step].dependencies
        if any(d not in outputs for d in deps):
            return None
        return {"inputs": inputs, **{d: outputs[d] for d in deps}}

    def stand_in(self, step: str) -> StandIn | None:
        """What the run goes on with when `step` gives up: its onFailure output, or null
        when every step depending on it can do without it (optionalDependencies);
        None: nothing stands in, and the run fails."""
        compiled = self.steps[step]
        if compiled.spec.on_failure is not None:
            return StandIn(compiled.spec.on_failure.output)
        dependents = [self.steps[d].spec for d in compiled.dependents]
        if dependents and all(step in d.optional_dependencies for d in dependents):
            return StandIn(None)
        return None

    def choose_pool(self, step: str, context: Mapping[str, Any]) -> str:
        """The pool `step` runs on, given its route context."""
        compiled = self.steps[step]
        if compiled.pool is not None:
            return compiled.pool
        for program, pool in compiled.routes:
            if program is None or _matches(program, context):
                return pool
        raise AssertionError("validated routes always end with a default")  # pragma: no cover


def _matches(program: Any, context: Mapping[str, Any]) -> bool:
    try:
        return program.execute(dict(context)) is True
    # The CEL library raises assorted types (KeyError for a missing field, ValueError,
    # RuntimeError); every one of them means this route cannot match this context.
    except Exception as exc:
        log.debug("route did not evaluate, trying the next: %s", exc)
        return False


def _compile_step(step: awf.Step, plan: dag.Plan, default_pool: str | None) -> CompiledStep:
    routes = tuple(
        (validation.compile_route(r.when) if r.when else None, r.pool) for r in step.routes or []
    )
    return CompiledStep(
        spec=step,
        dependencies=plan.dependencies[step.name],
        dependents=plan.dependents[step.name],
        pool=None if routes else (step.pool or default_pool),
        routes=routes,
    )


def compile_workflow(
    *, namespace: str, name: str, generation: int, spec: awf.AgentWorkflowSpec
) -> CompiledWorkflow:
    """Validate and compile `spec`, as a publisher does; raises dag.InvalidDagError
    listing every problem found."""
    checked = validation.check(spec)
    if checked.plan is None:
        raise dag.InvalidDagError(checked.problems)
    return compiled(namespace, name, generation, spec, checked.plan)


def compiled(
    namespace: str, name: str, generation: int, spec: awf.AgentWorkflowSpec, plan: dag.Plan
) -> CompiledWorkflow:
    """The runtime's form of a spec already validated, with `plan` its DAG."""
    steps = {s.name: _compile_step(s, plan, spec.default_pool) for s in spec.steps}
    return CompiledWorkflow(
        namespace=namespace, name=name, generation=generation, spec=spec, plan=plan, steps=steps
    )


def to_document(workflow: CompiledWorkflow) -> dict[str, Any]:
    return {
        "namespace": workflow.namespace,
        "name": workflow.name,
        "generation": workflow.generation,
        "spec": workflow.spec.to_wire(),
    }


def from_document(doc: Mapping[str, Any]) -> CompiledWorkflow:
    """A published generation as its readers hold it: the spec decoded into its model
    (the one codec), not validated again: its publisher did, and nothing else writes
    the document."""
    spec = awf.AgentWorkflowSpec.model_validate(doc["spec"])
    plan = validation.compile_plan(spec)
    return compiled(doc["namespace"], doc["name"], int(doc["generation"]), spec, plan)
