"""What a step is shown of long values and of its session: the latest whole turns and
items that fit, never half of one (trimtab.worker.memory, templates.pruned)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.reconcile.agentworkflow import templates
from trimtab.worker import memory


def _turn(q: str, a: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]


def test_the_latest_whole_turns_that_fit_are_kept_oldest_first() -> None:
    messages = _turn("q1 " * 10, "a1") + _turn("q2", "a2") + _turn("q3", "a3")
    shown = memory.recent(messages, 20, templates.estimate_tokens)
    assert [m["content"] for m in shown] == ["q2", "a2", "q3", "a3"]


def test_a_turn_that_does_not_fit_is_left_out_whole_and_so_is_all_before_it() -> None:
    messages = _turn("old", "a") + _turn("x" * 400, "a") + _turn("new", "a")
    shown = memory.recent(messages, 30, templates.estimate_tokens)
    assert [m["content"] for m in shown] == ["new", "a"]
    assert memory.recent(messages, 0, templates.estimate_tokens) == ()


@given(
    st.lists(st.tuples(st.text(max_size=30), st.text(max_size=30)), max_size=12), st.integers(0, 80)
)
def test_what_is_kept_is_a_suffix_of_whole_turns_within_the_limit(
    pairs: list[tuple[str, str]], limit: int
) -> None:
    messages = [m for q, a in pairs for m in _turn(q, a)]
    shown = list(memory.recent(messages, limit, templates.estimate_tokens))
    assert shown == messages[len(messages) - len(shown) :]
    assert len(shown) % 2 == 0
    cost = sum(templates.estimate_tokens(m["content"]) + 4 for m in shown)
    assert cost <= limit


def test_a_runs_turns_are_each_remembering_steps_prompt_and_output() -> None:
    spec = awf.AgentWorkflowSpec.model_validate(
        {
            "defaultPool": "p",
            "steps": [
                {"name": "a", "prompt": "A {{ inputs.x }}", "memory": {"session": True}},
                {"name": "b", "prompt": "B {{ a }}", "dependsOn": ["a"]},
            ],
        }
    )
    turns = memory.run_turns(spec, {"x": 1}, {"a": {"k": "v"}, "b": "no memory"})
    assert turns == _turn("A 1", '{"k":"v"}')


def test_a_long_list_keeps_its_latest_items_as_json() -> None:
    history = [{"n": i, "text": "message " * 5} for i in range(100)]
    out = templates.render("{{ inputs.h }}", {"inputs": {"h": history}}, max_value_tokens=100)
    marker, body = out.split("\n", 1)
    kept = json.loads(body)
    assert kept == history[len(history) - len(kept) :]
    assert 0 < len(kept) < 100
    assert marker == f"[... {100 - len(kept)} earlier items left out to fit 100 tokens]"
    assert templates.estimate_tokens(out) <= 100 + 16


def test_a_long_object_keeps_its_first_fields_whole() -> None:
    doc = {f"k{i}": "v" * 20 for i in range(50)}
    out = templates.render("{{ inputs.d }}", {"inputs": {"d": doc}}, max_value_tokens=60)
    marker, body = out.split("\n", 1)
    kept = json.loads(body)
    assert list(kept) == list(doc)[: len(kept)]
    assert marker.startswith(f"[... {50 - len(kept)} fields left out")


def test_text_and_a_list_whose_one_item_is_too_long_keep_their_start() -> None:
    out = templates.render("{{ inputs.t }}", {"inputs": {"t": ["y" * 400]}}, max_value_tokens=10)
    assert out.endswith("[... truncated to 10 tokens]")
    assert templates.render("{{ inputs.s }}", {"inputs": {"s": "z" * 80}}, max_value_tokens=10) == (
        "z" * 40 + "\n[... truncated to 10 tokens]"
    )
