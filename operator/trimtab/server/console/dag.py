"""A run's step graph laid out for drawing: each step a box in the column of its level
(its longest chain of dependencies), stacked in declaration order, and each dependency
an edge from the right side of one box to the left of the other. Pure: the page turns
the boxes and edges into SVG."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

BOX_W, BOX_H = 168, 44
GAP_X, GAP_Y = 56, 18
MARGIN = 8


@dataclasses.dataclass(frozen=True)
class Box:
    step: str
    x: int
    y: int
    state: str


@dataclasses.dataclass(frozen=True)
class Edge:
    source: str
    target: str
    x1: int
    y1: int
    x2: int
    y2: int


@dataclasses.dataclass(frozen=True)
class Layout:
    boxes: list[Box]
    edges: list[Edge]
    width: int
    height: int


def layout(
    order: tuple[str, ...],
    level: Mapping[str, int],
    dependencies: Mapping[str, tuple[str, ...]],
    states: Mapping[str, str],
) -> Layout:
    rows: dict[int, int] = {}
    boxes: dict[str, Box] = {}
    for step in order:
        column = level[step]
        row = rows.get(column, 0)
        rows[column] = row + 1
        x = MARGIN + column * (BOX_W + GAP_X)
        y = MARGIN + row * (BOX_H + GAP_Y)
        boxes[step] = Box(step, x, y, states.get(step, "pending"))
    edges = [
        Edge(dep, step, boxes[dep].x + BOX_W, boxes[dep].y + BOX_H // 2,
             boxes[step].x, boxes[step].y + BOX_H // 2)
        for step in order for dep in dependencies.get(step, ())
    ]  # fmt: skip
    columns = max(level.values(), default=0) + 1
    tallest = max(rows.values(), default=1)
    width = 2 * MARGIN + columns * BOX_W + (columns - 1) * GAP_X
    height = 2 * MARGIN + tallest * BOX_H + (tallest - 1) * GAP_Y
    return Layout(list(boxes.values()), edges, width, height)
