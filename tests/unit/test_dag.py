"""The workflow step graph: problems found, plans compiled, and the runtime's view of both."""

from __future__ import annotations

import functools
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trimtab.reasons import Reason
from trimtab.reconcile.agentworkflow.dag import (
    InvalidDagError,
    Plan,
    Problem,
    StepNode,
    compile_plan,
    find_problems,
)

CYCLE = Reason.DEPENDENCY_CYCLE


def step(name: str, *deps: str, weight: float = 1.0) -> StepNode:
    return StepNode(name=name, depends_on=deps, weight=weight)


CUSTOMER_SUPPORT = [
    step("history"),
    step("docs"),
    step("intent"),
    step("respond", "history", "docs", "intent"),
]


@pytest.mark.parametrize(
    ("steps", "order", "roots", "leaves", "depth", "width", "critical", "weight"),
    [
        pytest.param(
            [step("a"), step("b", "a"), step("c", "b")],
            ("a", "b", "c"), ("a",), ("c",), 3, 1, ("a", "b", "c"), 3.0,
            id="linear-chain",
        ),
        pytest.param(
            [step("a"), step("b", "a"), step("c", "a"), step("d", "b", "c")],
            ("a", "b", "c", "d"), ("a",), ("d",), 3, 2, ("a", "b", "d"), 3.0,
            id="diamond",
        ),
        pytest.param(
            CUSTOMER_SUPPORT,
            ("history", "docs", "intent", "respond"), ("history", "docs", "intent"),
            ("respond",), 2, 3, ("history", "respond"), 2.0,
            id="fan-out-fan-in",
        ),
        pytest.param(
            [step("only")], ("only",), ("only",), ("only",), 1, 1, ("only",), 1.0,
            id="single-step",
        ),
        pytest.param(
            [step("a"), step("b", "a"), step("x"), step("y", "x"), step("z")],
            ("a", "b", "x", "y", "z"), ("a", "x", "z"), ("b", "y", "z"), 2, 3, ("a", "b"), 2.0,
            id="independent-components",
        ),
        pytest.param(
            [step("b"), step("a"), step("c", "a", "b")],
            ("b", "a", "c"), ("b", "a"), ("c",), 2, 2, ("b", "c"), 2.0,
            id="ties-follow-declaration-not-name",
        ),
        pytest.param(
            [
                step("fetch"),
                step("fast", "fetch", weight=1.0),
                step("slow", "fetch", weight=5.0),
                step("merge", "fast", "slow"),
            ],
            ("fetch", "fast", "slow", "merge"), ("fetch",), ("merge",), 3, 2,
            ("fetch", "slow", "merge"), 7.0,
            id="critical-path-takes-heavier-branch",
        ),
        pytest.param(
            [step("big", weight=10.0), step("p"), step("q", "p")],
            ("big", "p", "q"), ("big", "p"), ("big", "q"), 2, 2, ("big",), 10.0,
            id="critical-path-is-weight-not-length",
        ),
    ],
)  # fmt: skip
def test_compile_plan(
    steps: list[StepNode],
    order: tuple[str, ...],
    roots: tuple[str, ...],
    leaves: tuple[str, ...],
    depth: int,
    width: int,
    critical: tuple[str, ...],
    weight: float,
) -> None:
    plan = compile_plan(steps)
    assert plan.order == order
    assert plan.roots == roots
    assert plan.leaves == leaves
    assert plan.depth == depth
    assert plan.max_parallelism == width
    assert plan.critical_path == critical
    assert plan.critical_path_weight == weight


def test_fan_in_maps_dependents_and_levels() -> None:
    plan = compile_plan(CUSTOMER_SUPPORT)
    assert dict(plan.dependents) == {
        "history": ("respond",),
        "docs": ("respond",),
        "intent": ("respond",),
        "respond": (),
    }
    assert plan.dependencies["respond"] == ("history", "docs", "intent")
    assert dict(plan.level) == {"history": 0, "docs": 0, "intent": 0, "respond": 1}


@pytest.mark.parametrize(
    ("done", "ready"),
    [
        pytest.param(set(), ("a",), id="nothing-done"),
        pytest.param({"a"}, ("b", "c"), id="root-done"),
        pytest.param({"a", "c"}, ("b",), id="one-branch-done"),
        pytest.param({"a", "b", "c"}, ("d",), id="fan-in-ready"),
        pytest.param({"a", "b", "c", "d"}, (), id="all-done"),
    ],
)
def test_ready_after_on_a_diamond(done: set[str], ready: tuple[str, ...]) -> None:
    plan = compile_plan([step("a"), step("b", "a"), step("c", "a"), step("d", "b", "c")])
    assert plan.ready_after(done) == ready


def _at(i: int, j: int | None = None) -> str:
    return f"spec.steps[{i}].dependsOn" + ("" if j is None else f"[{j}]")


@pytest.mark.parametrize(
    ("steps", "problems"),
    [
        pytest.param([], [Problem("spec.steps", "a workflow needs at least one step")], id="empty"),
        pytest.param(
            [step("a"), step("b"), step("a")],
            [Problem("spec.steps[2].name", 'step name "a" is already used by spec.steps[0]')],
            id="duplicate-names",
        ),
        pytest.param(
            [step("a", "a")],
            [Problem(_at(0, 0), 'step "a" depends on itself')],
            id="self-dependency-is-not-also-a-cycle",
        ),
        pytest.param(
            [step("a"), step("b", "a", "x")],
            [Problem(_at(1, 1), 'step "b" depends on "x", which is not a step of this workflow')],
            id="dangling-dependency",
        ),
        pytest.param(
            [step("a"), step("b", "a", "a")],
            [Problem(_at(1, 1), 'step "b" lists "a" more than once')],
            id="duplicate-dependency-entry",
        ),
        pytest.param(
            [step("a", "b"), step("b", "a")],
            [Problem(_at(0), "dependency cycle: a -> b -> a", CYCLE)],
            id="two-cycle",
        ),
        pytest.param(
            [step("b", "c"), step("c", "a"), step("a", "b")],
            [Problem(_at(2), "dependency cycle: a -> b -> c -> a", CYCLE)],
            id="three-cycle-starts-at-smallest-name",
        ),
        pytest.param(
            [step("a", "b"), step("b", "a"), step("x", "y"), step("y", "x"), step("ok", "a")],
            [
                Problem(_at(0), "dependency cycle: a -> b -> a", CYCLE),
                Problem(_at(2), "dependency cycle: x -> y -> x", CYCLE),
            ],
            id="two-separate-cycles",
        ),
        pytest.param(
            [step("tail", "b"), step("b", "c"), step("c", "b")],
            [Problem(_at(1), "dependency cycle: b -> c -> b", CYCLE)],
            id="cycle-names-only-steps-on-it",
        ),
        pytest.param(
            [step("a", "a", "b"), step("b", "a")],
            [
                Problem(_at(0, 0), 'step "a" depends on itself'),
                Problem(_at(0), "dependency cycle: a -> b -> a", CYCLE),
            ],
            id="self-dependency-beside-a-real-cycle",
        ),
        pytest.param(
            [
                step("a", "a"),
                step("b", "a", "a", "ghost"),
                step("a"),
                step("c", "d"),
                step("d", "c"),
            ],
            [
                Problem(_at(0, 0), 'step "a" depends on itself'),
                Problem(_at(1, 1), 'step "b" lists "a" more than once'),
                Problem(
                    _at(1, 2), 'step "b" depends on "ghost", which is not a step of this workflow'
                ),
                Problem("spec.steps[2].name", 'step name "a" is already used by spec.steps[0]'),
                Problem(_at(3), "dependency cycle: c -> d -> c", CYCLE),
            ],
            id="several-problems-all-reported",
        ),
    ],
)
def test_find_problems(steps: list[StepNode], problems: list[Problem]) -> None:
    assert find_problems(steps) == problems


def test_compile_plan_refuses_an_invalid_dag_with_every_problem() -> None:
    steps = [step("a", "b"), step("b", "a"), step("c", "nope")]
    with pytest.raises(InvalidDagError) as caught:
        compile_plan(steps)
    assert isinstance(caught.value, ValueError)
    assert caught.value.problems == find_problems(steps)
    assert str(caught.value) == (
        'spec.steps[2].dependsOn[0]: step "c" depends on "nope", which is not a step of this'
        " workflow\nspec.steps[0].dependsOn: dependency cycle: a -> b -> a"
    )


@st.composite
def dags(draw: st.DrawFn) -> list[StepNode]:
    """Random DAGs: each node depends only on earlier ones, then declared shuffled."""
    n = draw(st.integers(min_value=1, max_value=30))
    names = [f"s{i:02d}" for i in range(n)]
    nodes = [
        StepNode(
            name=names[i],
            depends_on=tuple(draw(st.lists(st.sampled_from(names[:i]), unique=True)) if i else ()),
            weight=float(draw(st.integers(min_value=0, max_value=20))),
        )
        for i in range(n)
    ]
    return draw(st.permutations(nodes))


def _heaviest_chain(steps: list[StepNode]) -> float:
    # Memoised recursion over dependencies, independent of the plan's own sweep.
    by_name = {s.name: s for s in steps}

    @functools.cache
    def ending_at(name: str) -> float:
        deps = by_name[name].depends_on
        return by_name[name].weight + max((ending_at(d) for d in deps), default=0.0)

    return max(ending_at(name) for name in by_name)


@settings(deadline=None)
@given(dags())
def test_random_dags_compile_to_consistent_plans(steps: list[StepNode]) -> None:
    assert find_problems(steps) == []
    plan = compile_plan(steps)
    names = [s.name for s in steps]
    assert sorted(plan.order) == sorted(names)
    position = {name: i for i, name in enumerate(plan.order)}
    for s in steps:
        for dep in s.depends_on:
            assert position[dep] < position[s.name]
            assert plan.level[dep] < plan.level[s.name]
    assert plan.depth == max(plan.level.values()) + 1
    assert plan.roots == tuple(s.name for s in steps if not s.depends_on)
    assert _is_inverse(plan)


@settings(deadline=None)
@given(dags())
def test_critical_path_is_a_heaviest_root_to_leaf_chain(steps: list[StepNode]) -> None:
    plan = compile_plan(steps)
    path = plan.critical_path
    assert path[0] in plan.roots
    assert path[-1] in plan.leaves
    for earlier, later in itertools.pairwise(path):
        assert earlier in plan.dependencies[later]
    weight = {s.name: s.weight for s in steps}
    assert plan.critical_path_weight == sum(weight[name] for name in path)
    assert plan.critical_path_weight >= _heaviest_chain(steps)


@settings(deadline=None)
@given(dags())
def test_ready_after_visits_every_step_once(steps: list[StepNode]) -> None:
    plan = compile_plan(steps)
    done: set[str] = set()
    visited: list[str] = []
    while ready := plan.ready_after(done):
        assert not done.intersection(ready)
        assert all(set(plan.dependencies[name]) <= done for name in ready)
        visited.extend(ready)
        done.update(ready)
    assert sorted(visited) == sorted(s.name for s in steps)


def _is_inverse(plan: Plan) -> bool:
    forward = {(dep, name) for name, deps in plan.dependencies.items() for dep in deps}
    backward = {(name, user) for name, users in plan.dependents.items() for user in users}
    return forward == backward and plan.dependents.keys() == plan.dependencies.keys()


@settings(deadline=None)
@given(st.data(), st.integers(min_value=2, max_value=20))
def test_a_back_edge_in_a_chain_is_reported_as_a_cycle(data: st.DataObject, n: int) -> None:
    names = [f"c{i:02d}" for i in range(n)]
    early = data.draw(st.integers(min_value=0, max_value=n - 2))
    late = data.draw(st.integers(min_value=early + 1, max_value=n - 1))
    chain = [step(name, *names[max(i - 1, 0) : i]) for i, name in enumerate(names)]
    chain[early] = step(names[early], *chain[early].depends_on, names[late])
    steps = data.draw(st.permutations(chain))
    cycle = [names[early], *reversed(names[early + 1 : late + 1]), names[early]]
    index = next(i for i, s in enumerate(steps) if s.name == names[early])
    assert find_problems(steps) == [
        Problem(f"spec.steps[{index}].dependsOn", "dependency cycle: " + " -> ".join(cycle), CYCLE)
    ]
    with pytest.raises(InvalidDagError):
        compile_plan(steps)


@settings(deadline=None)
@given(dags(), st.data())
def test_what_a_finishing_step_releases_is_what_ready_after_adds(
    steps: list[StepNode], data: st.DataObject
) -> None:
    """complete.lua releases a dependent when each step in its `waits_after` list is done:
    from any reachable set of finished steps, that is exactly what ready_after adds."""
    plan = compile_plan(steps)
    done: set[str] = set()
    while ready := plan.ready_after(done):
        finishing = data.draw(st.sampled_from(ready))
        released = {name for name, others in plan.waits_after(finishing) if set(others) <= done}
        assert released == set(plan.ready_after(done | {finishing})) - set(ready)
        done.add(finishing)
