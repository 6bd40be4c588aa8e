"""The step graph of a workflow: what is wrong with it, and the plan it compiles to.

This module owns the one meaning of `dependsOn`. The operator calls it to set
SpecValid=False with every problem it finds, or to report depth and critical path in
status; the runtime calls `Plan.waits_after` when a step finishes, for the dependents
it may release and what else each still waits on, and complete.lua only reads, in the
same atomic step as the completion, whether those are done (deciding in Python instead
would need a read and a compare-and-set per completion, which sibling branches finishing
together would keep failing). `Plan.ready_after` is the same rule over a whole set of
finished steps; the unit tests hold the two to agree.
"""

from __future__ import annotations

import heapq
import types
from collections import Counter, deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from trimtab.reasons import Reason


@dataclass(frozen=True)
class StepNode:
    """One step as the graph sees it; `weight` is its expected duration."""

    name: str
    depends_on: tuple[str, ...] = ()
    weight: float = 1.0


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the spec, located by its path in the object; `reason` is
    the kind of problem the SpecValid condition reports."""

    path: str
    message: str
    reason: Reason = Reason.INVALID_SPEC


class InvalidDagError(ValueError):
    """The steps do not form a valid DAG; `problems` lists every reason."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(f"{p.path}: {p.message}" for p in self.problems))


@dataclass(frozen=True)
class Plan:
    """A valid step graph, compiled. Every mapping iterates in declaration order."""

    order: tuple[str, ...]
    roots: tuple[str, ...]
    leaves: tuple[str, ...]
    dependents: Mapping[str, tuple[str, ...]]
    dependencies: Mapping[str, tuple[str, ...]]
    level: Mapping[str, int]
    depth: int
    critical_path: tuple[str, ...]
    critical_path_weight: float
    max_parallelism: int

    def waits_after(self, step: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Each dependent of `step`, with its other dependencies: once `step` is done, a
        dependent is ready exactly when every one of those is done too."""
        return tuple(
            (name, tuple(d for d in self.dependencies[name] if d != step))
            for name in self.dependents[step]
        )

    def ready_after(self, done: Collection[str]) -> tuple[str, ...]:
        """Steps not in `done` whose dependencies all are, in declaration order."""
        return tuple(
            name
            for name, deps in self.dependencies.items()
            if name not in done and all(d in done for d in deps)
        )


def find_problems(steps: Sequence[StepNode]) -> list[Problem]:
    """Every problem with `steps`: each step's in declaration order, then cycles."""
    if not steps:
        return [Problem("spec.steps", "a workflow needs at least one step")]
    names = {s.name for s in steps}
    first_index: dict[str, int] = {}
    problems: list[Problem] = []
    for i, step in enumerate(steps):
        first = first_index.setdefault(step.name, i)
        if first != i:
            message = f'step name "{step.name}" is already used by spec.steps[{first}]'
            problems.append(Problem(f"spec.steps[{i}].name", message))
        problems.extend(_dependency_problems(i, step, names))
    return problems + _cycle_problems(_graph(steps), first_index)


def _dependency_problems(i: int, step: StepNode, known: Collection[str]) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    for j, dep in enumerate(step.depends_on):
        path = f"spec.steps[{i}].dependsOn[{j}]"
        if dep in seen:
            problems.append(Problem(path, f'step "{step.name}" lists "{dep}" more than once'))
        elif dep == step.name:
            problems.append(Problem(path, f'step "{step.name}" depends on itself'))
        elif dep not in known:
            message = f'step "{step.name}" depends on "{dep}", which is not a step of this workflow'
            problems.append(Problem(path, message))
        seen.add(dep)
    return problems


def _graph(steps: Sequence[StepNode]) -> dict[str, tuple[str, ...]]:
    # Only edges that could close a cycle: self-edges and dangling names are reported
    # on their own, and a duplicated name contributes the dependencies of every copy.
    names = {s.name for s in steps}
    graph: dict[str, dict[str, None]] = {}
    for step in steps:
        edges = graph.setdefault(step.name, {})
        edges.update((d, None) for d in step.depends_on if d in names and d != step.name)
    return {name: tuple(edges) for name, edges in graph.items()}


def _cycle_problems(
    graph: Mapping[str, tuple[str, ...]], index: Mapping[str, int]
) -> list[Problem]:
    # One cycle per strongly connected component keeps the cost polynomial on hostile
    # specs (the number of elementary cycles can be exponential); fixing it reveals
    # any other cycle through the same steps on the next reconcile.
    problems: list[Problem] = []
    for component in _cyclic_components(graph):
        cycle = _shortest_cycle(min(component), graph, component)
        message = "dependency cycle: " + " -> ".join((*cycle, cycle[0]))
        path = f"spec.steps[{index[cycle[0]]}].dependsOn"
        problems.append(Problem(path, message, Reason.DEPENDENCY_CYCLE))
    return problems


def _cyclic_components(graph: Mapping[str, tuple[str, ...]]) -> list[frozenset[str]]:
    """Strongly connected components with a cycle, ordered by their smallest name."""
    # Peeling acyclic steps from both ends first leaves few seeds for the quadratic part.
    stuck = set(graph) - set(_kahn(graph))
    reverse = _invert({name: tuple(d for d in graph[name] if d in stuck) for name in stuck})
    stuck -= set(_kahn(reverse))
    components: list[frozenset[str]] = []
    placed: set[str] = set()
    for seed in sorted(stuck):
        if seed in placed:
            continue
        component = _reach(seed, graph) & _reach(seed, reverse)
        placed |= component
        if len(component) > 1:
            components.append(frozenset(component))
    return components


def _reach(start: str, edges: Mapping[str, Iterable[str]]) -> set[str]:
    seen = {start}
    queue = deque([start])
    while queue:
        for nxt in edges.get(queue.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def _shortest_cycle(
    start: str, graph: Mapping[str, tuple[str, ...]], within: frozenset[str]
) -> tuple[str, ...]:
    # Breadth-first, so the cycle shown names only steps that are truly on it.
    parent: dict[str, str] = {start: start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for dep in sorted(d for d in graph[node] if d in within):
            if dep == start:
                return _walk_back(node, parent)
            if dep not in parent:
                parent[dep] = node
                queue.append(dep)
    raise AssertionError(f"{start} is in a cyclic component but on no cycle")


def _walk_back(node: str, parent: Mapping[str, str]) -> tuple[str, ...]:
    path = [node]
    while parent[path[-1]] != path[-1]:
        path.append(parent[path[-1]])
    return tuple(reversed(path))


def _kahn(graph: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Topological order, earliest-declared first among ready steps; omits cyclic ones."""
    position = {name: i for i, name in enumerate(graph)}
    waiting = {name: len(deps) for name, deps in graph.items()}
    dependents = _invert(graph)
    ready = [position[name] for name, count in waiting.items() if count == 0]
    names = list(graph)
    order: list[str] = []
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for dependent in dependents[name]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, position[dependent])
    return order


def _invert(graph: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    inverse: dict[str, list[str]] = {name: [] for name in graph}
    for name, deps in graph.items():
        for dep in deps:
            inverse[dep].append(name)
    return {name: tuple(dependents) for name, dependents in inverse.items()}


def compile_plan(steps: Sequence[StepNode]) -> Plan:
    """The plan for `steps`, or InvalidDagError carrying every problem found."""
    problems = find_problems(steps)
    if problems:
        raise InvalidDagError(problems)
    dependencies = {s.name: tuple(s.depends_on) for s in steps}
    dependents = _invert(dependencies)
    order = _kahn(dependencies)
    level = _levels(order, dependencies)
    leaves = tuple(name for name, users in dependents.items() if not users)
    path, weight = _critical_path(order, dependencies, steps, leaves=leaves)
    return Plan(
        order=tuple(order),
        roots=tuple(name for name, deps in dependencies.items() if not deps),
        leaves=leaves,
        dependents=types.MappingProxyType(dependents),
        dependencies=types.MappingProxyType(dependencies),
        level=types.MappingProxyType(level),
        depth=max(level.values()) + 1,
        critical_path=path,
        critical_path_weight=weight,
        max_parallelism=max(Counter(level.values()).values()),
    )


def _levels(order: Sequence[str], dependencies: Mapping[str, tuple[str, ...]]) -> dict[str, int]:
    level: dict[str, int] = {}
    for name in order:
        level[name] = 1 + max((level[d] for d in dependencies[name]), default=-1)
    # Declaration order, like every other mapping on the plan.
    return {name: level[name] for name in dependencies}


def _critical_path(
    order: Sequence[str],
    dependencies: Mapping[str, tuple[str, ...]],
    steps: Sequence[StepNode],
    *,
    leaves: Sequence[str],
) -> tuple[tuple[str, ...], float]:
    # Ties go to the earliest-declared step, hence the negated position in each key.
    position = {s.name: i for i, s in enumerate(steps)}
    weight = {s.name: s.weight for s in steps}
    best: dict[str, float] = {}
    via: dict[str, str | None] = {}
    for name in order:
        prev = max(dependencies[name], key=lambda d: (best[d], -position[d]), default=None)
        via[name] = prev
        best[name] = weight[name] + (best[prev] if prev is not None else 0.0)
    # Only a leaf may end the path, so it runs root to leaf whatever the weights' signs.
    end: str | None = max(leaves, key=lambda n: (best[n], -position[n]))
    path: list[str] = []
    while end is not None:
        path.append(end)
        end = via[end]
    return tuple(reversed(path)), best[path[0]]
