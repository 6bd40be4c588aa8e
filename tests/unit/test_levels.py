"""How a pool's free slots are shared among its priority levels (trimtab.queue.levels):
each level's turns in a cycle are its weight, spread out, so under a full backlog no
level waits longer than a cycle, and a read's shares always add up to its slots."""

from __future__ import annotations

import collections

from hypothesis import given
from hypothesis import strategies as st

from trimtab.queue import levels, wire


def test_a_cycle_gives_each_level_its_weight_highest_first() -> None:
    assert collections.Counter(levels.CYCLE) == levels.WEIGHTS
    assert levels.CYCLE[0] is wire.Priority.HIGH
    assert [p.value for p in levels.CYCLE] == [
        "high",
        "normal",
        "high",
        "low",
        "high",
        "normal",
        "high",
    ]


@given(start=st.integers(0, 10**6))
def test_every_level_gets_a_turn_within_every_cycle_of_slots(start: int) -> None:
    window = levels.shares(start, len(levels.CYCLE))
    assert window == levels.WEIGHTS  # whichever turn a full cycle starts at


@given(turn=st.integers(0, 10**6), count=st.integers(0, 200))
def test_a_reads_shares_add_up_to_its_slots_and_follow_the_weights(turn: int, count: int) -> None:
    given_out = levels.shares(turn, count)
    assert sum(given_out.values()) == count
    cycles, _ = divmod(count, len(levels.CYCLE))
    for level, weight in levels.WEIGHTS.items():
        assert cycles * weight <= given_out[level] <= (cycles + 1) * weight


def test_one_slot_at_a_time_follows_the_cycle() -> None:
    firsts = []
    for turn in range(14):
        [(level, _)] = [(p, n) for p, n in levels.shares(turn, 1).items() if n]
        firsts.append(level)
    assert tuple(firsts) == levels.CYCLE * 2
