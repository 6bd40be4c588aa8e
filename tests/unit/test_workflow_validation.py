"""What CEL cannot check: cycles, missing pools, route syntax, output schemas."""

from __future__ import annotations

from typing import Any

import pytest

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.reconcile.agentworkflow import compile as compile_mod
from trimtab.reconcile.agentworkflow import dag, validation


def _spec(*steps: dict[str, Any], **extra: Any) -> awf.AgentWorkflowSpec:
    return awf.AgentWorkflowSpec.model_validate(
        {"defaultPool": "small", "steps": list(steps), **extra}
    )


def _step(name: str, *deps: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "prompt": f"do {name}", "dependsOn": list(deps), **extra}


FAN_IN = _spec(
    _step("history"), _step("docs"), _step("intent"), _step("respond", "history", "docs", "intent")
)


@pytest.mark.parametrize(
    ("spec", "pools", "expected"),
    [
        pytest.param(FAN_IN, {"small"}, [], id="valid-fan-in"),
        pytest.param(
            _spec(_step("a", "b"), _step("b", "a")),
            {"small"},
            [("spec.steps[0].dependsOn", "dependency cycle: a -> b -> a")],
            id="cycle",
        ),
        pytest.param(
            FAN_IN,
            set(),
            [("spec.defaultPool", 'AgentPool "small" does not exist in this namespace')],
            id="missing-default-pool",
        ),
        pytest.param(
            _spec(
                _step("a", fallback={"pool": "large"}),
                budget={"onExhausted": "Degrade", "degradePool": "tiny"},
            ),
            {"small"},
            [
                ("spec.budget.degradePool", 'AgentPool "tiny" does not exist in this namespace'),
                (
                    "spec.steps[0].fallback.pool",
                    'AgentPool "large" does not exist in this namespace',
                ),
            ],
            id="missing-fallback-and-degrade-pools",
        ),
        pytest.param(
            _spec(_step("a", routes=[{"when": "inputs.x >", "pool": "small"}, {"pool": "small"}])),
            {"small"},
            [("spec.steps[0].routes[0].when", "route expression does not compile")],
            id="route-syntax",
        ),
        pytest.param(
            _spec(_step("a", output={"schema": {"type": "object", "required": "response"}})),
            {"small"},
            [("spec.steps[0].output.schema", "not a valid JSON Schema")],
            id="schema-required-not-a-list",
        ),
        pytest.param(
            _spec(_step("a"), inputs={"type": "object", "properties": {"x": {"type": "nope"}}}),
            {"small"},
            [("spec.inputs", "not a valid JSON Schema")],
            id="inputs-schema-unknown-type",
        ),
    ],
)
def test_find_problems(
    spec: awf.AgentWorkflowSpec, pools: set[str], expected: list[tuple[str, str]]
) -> None:
    problems = validation.find_problems(spec, pools=pools)
    assert len(problems) == len(expected), problems
    for problem, (path, message) in zip(problems, expected, strict=True):
        assert problem.path == path
        assert message in problem.message


def test_pools_are_not_checked_when_unknown() -> None:
    assert validation.find_problems(FAN_IN) == []


def test_pool_references_cover_every_place_a_pool_is_named() -> None:
    spec = _spec(
        _step("a", pool="p1", fallback={"pool": "p2"}),
        _step("b", routes=[{"when": "a.x == 1", "pool": "p3"}, {"pool": "p4"}]),
        budget={"onExhausted": "Degrade", "degradePool": "p5"},
    )
    assert dict(validation.pool_references(spec)) == {
        "spec.defaultPool": "small",
        "spec.budget.degradePool": "p5",
        "spec.steps[0].pool": "p1",
        "spec.steps[0].fallback.pool": "p2",
        "spec.steps[1].routes[0].pool": "p3",
        "spec.steps[1].routes[1].pool": "p4",
    }


def test_compile_plan_of_the_support_shape() -> None:
    plan = validation.compile_plan(FAN_IN)
    assert plan.roots == ("history", "docs", "intent")
    assert plan.depth == 2
    assert plan.max_parallelism == 3
    assert plan.critical_path[-1] == "respond"


def test_compile_plan_refuses_a_cycle_with_every_problem() -> None:
    with pytest.raises(dag.InvalidDagError) as err:
        validation.compile_plan(_spec(_step("a", "b"), _step("b", "a")))
    assert [p.message for p in err.value.problems] == ["dependency cycle: a -> b -> a"]


def test_compiled_route_evaluates_over_dependency_outputs() -> None:
    program = validation.compile_route("intent.complexity == 'high' || inputs.vip")
    assert program.execute({"intent": {"complexity": "high"}, "inputs": {"vip": False}})
    assert not program.execute({"intent": {"complexity": "low"}, "inputs": {"vip": False}})


def test_a_default_output_must_fit_the_steps_schema() -> None:
    schema = {"type": "object", "required": ["intent"]}
    fits = _spec(_step("a", output={"schema": schema}, onFailure={"output": {"intent": "other"}}))
    assert validation.find_problems(fits) == []
    breaks = _spec(_step("a", output={"schema": schema}, onFailure={"output": {}}))
    [problem] = validation.find_problems(breaks)
    assert problem.path == "spec.steps[0].onFailure.output"
    assert "'intent' is a required property" in problem.message


def test_what_stands_in_for_a_step_that_gives_up() -> None:
    spec = _spec(
        _step("history"),
        _step("docs", onFailure={"output": {"found": []}}),
        _step("intent"),
        _step("respond", "history", "docs", "intent", optionalDependencies=["history"]),
        _step("audit", "intent"),
        _step("log", "intent", optionalDependencies=["intent"]),
    )
    wf = compile_mod.compile_workflow(namespace="n", name="w", generation=1, spec=spec)
    assert wf.stand_in("docs") == compile_mod.StandIn({"found": []})  # its own default
    assert wf.stand_in("history") == compile_mod.StandIn(None)  # its one dependent can do without
    assert wf.stand_in("intent") is None  # respond and audit need it, though log does not
    assert wf.stand_in("respond") is None  # a step nothing depends on fails its run


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("{{ inputs.customer_id }}", None),
        ("tenant-{{ inputs.org }}-{{ inputs.user }}", None),
        ("{{ history.customer }}", "inputs only"),
        ("constant", "inputs only"),
        ("{{ inputs.x", "unclosed"),
    ],
)
def test_a_concurrency_key_names_the_inputs(key: str, message: str | None) -> None:
    spec = _spec(_step("a"), concurrencyKey={"key": key, "limit": 2})
    problems = validation.find_problems(spec)
    if message is None:
        assert problems == []
    else:
        [problem] = problems
        assert problem.path == "spec.concurrencyKey.key"
        assert message in problem.message
