"""Template rendering: lookups only, JSON for non-strings, clear errors, token truncation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.reconcile.agentworkflow.templates import TemplateError, render, truncate_tokens
from trimtab.worker import execute

CONTEXT: dict[str, Any] = {
    "inputs": {"message": "my order is late", "customer": {"id": 7, "vip": True}},
    "history": {"tickets": [{"title": "refund"}, {"title": "late delivery"}]},
    "intent": "complaint",
    "docs": None,
    "scores": [0.5, 1],
    "table": {"0": "zero-as-key"},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param("Hi {{inputs.message}}!", "Hi my order is late!", id="dotted"),
        pytest.param("{{   intent  }}", "complaint", id="whitespace-in-braces"),
        pytest.param("{{\nintent\n}}", "complaint", id="newlines-in-braces"),
        pytest.param("{{ history.tickets.1.title }}", "late delivery", id="list-index"),
        pytest.param("{{ inputs.customer.id }}", "7", id="number-as-json"),
        pytest.param("{{ inputs.customer.vip }}", "true", id="bool-as-json"),
        pytest.param("{{ docs }}", "null", id="none-as-json"),
        pytest.param("{{ scores }}", "[0.5,1]", id="list-as-compact-json"),
        pytest.param("{{ inputs.customer }}", '{"id":7,"vip":true}', id="dict-as-compact-json"),
        pytest.param("{{ table.0 }}", "zero-as-key", id="digit-key-in-a-mapping"),
        pytest.param("{{intent}}/{{intent}}", "complaint/complaint", id="repeated"),
        pytest.param("no placeholders } { }}", "no placeholders } { }}", id="stray-braces"),
        pytest.param(r"\{{ intent }}", "{{ intent }}", id="escaped"),
        pytest.param(r"\{{{{ intent }}", "{{complaint", id="escaped-then-placeholder"),
        pytest.param("", "", id="empty"),
    ],
)
def test_render(template: str, expected: str) -> None:
    assert render(template, CONTEXT) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("naïve café ☕", "naïve café ☕", id="unicode-string"),
        pytest.param({"city": "Zürich"}, '{"city":"Zürich"}', id="unicode-json-not-escaped"),
        pytest.param("{{ intent }}", "{{ intent }}", id="value-never-rendered-again"),
    ],
)
def test_values_are_inserted_verbatim(value: object, expected: str) -> None:
    assert render("{{ inputs.v }}", {"inputs": {"v": value}, "intent": "x"}) == expected


@pytest.mark.parametrize(
    ("template", "fragments"),
    [
        pytest.param(
            "{{ intnet }}",
            ["'intnet'", "the context", "available names: docs, history, inputs, intent"],
            id="unknown-top-level",
        ),
        pytest.param(
            "{{ inputs.messag }}", ["'inputs.messag'", "'messag' is not in inputs"], id="key"
        ),
        pytest.param(
            "{{ history.tickets.5.title }}",
            ["'history.tickets.5.title'", "'5' is not in history.tickets"],
            id="index-out-of-range",
        ),
        pytest.param("{{ intent.0 }}", ["'0' is not in intent"], id="index-into-a-string"),
        pytest.param("{{ scores.first }}", ["'first' is not in scores"], id="name-on-a-list"),
        pytest.param("{{ docs.x }}", ["'x' is not in docs"], id="through-null"),
    ],
)
def test_missing_path_names_the_path_and_what_exists(template: str, fragments: list[str]) -> None:
    with pytest.raises(TemplateError) as caught:
        render(template, CONTEXT)
    for fragment in fragments:
        assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        pytest.param("Hi {{ intent", "unclosed", id="unclosed"),
        pytest.param("{{ intent }} and {{", "unclosed", id="unclosed-after-a-placeholder"),
        pytest.param("{{ }}", "invalid placeholder", id="empty-placeholder"),
        pytest.param("{{ intent | upper }}", "invalid placeholder", id="filter"),
        pytest.param("{{ inputs['message'] }}", "invalid placeholder", id="subscript"),
        pytest.param("{{ __import__('os') }}", "invalid placeholder", id="call"),
        pytest.param("{{ history..tickets }}", "invalid placeholder", id="empty-segment"),
        pytest.param("{{ history.tickets.-1 }}", "invalid placeholder", id="negative-index"),
        pytest.param("{{ 1 + 1 }}", "invalid placeholder", id="arithmetic"),
    ],
)
def test_malformed_templates_are_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        render(template, CONTEXT)


def test_template_error_is_a_value_error() -> None:
    assert issubclass(TemplateError, ValueError)


def test_non_json_values_are_template_errors() -> None:
    with pytest.raises(TemplateError, match="not JSON"):
        render("{{ inputs.v }}", {"inputs": {"v": {1, 2}}})


def test_lookups_never_touch_attributes() -> None:
    class Tripwire:
        touched = False

        def __getattr__(self, name: str) -> object:
            Tripwire.touched = True
            raise AttributeError(name)

    with pytest.raises(TemplateError):
        render("{{ inputs.obj.__class__ }}", {"inputs": {"obj": Tripwire()}})
    with pytest.raises(TemplateError):
        render("{{ inputs.__class__ }}", {"inputs": {}})
    assert not Tripwire.touched


@pytest.mark.parametrize(
    ("text", "max_tokens", "expected"),
    [
        pytest.param("short", 10, "short", id="short-untouched"),
        pytest.param("x" * 40, 10, "x" * 40, id="exactly-at-limit"),
        pytest.param("x" * 41, 10, "x" * 40 + "\n[... truncated to 10 tokens]", id="over"),
        pytest.param("abc", 0, "\n[... truncated to 0 tokens]", id="zero-budget"),
        pytest.param("", 0, "", id="empty"),
    ],
)
def test_truncate_tokens(text: str, max_tokens: int, expected: str) -> None:
    assert truncate_tokens(text, max_tokens) == expected


def test_truncate_tokens_rejects_a_negative_budget() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        truncate_tokens("text", -1)


@given(text=st.text().filter(lambda text: "{{" not in text))
def test_text_without_placeholders_is_returned_unchanged(text: str) -> None:
    assert render(text, {}) == text


@given(expression=st.text().filter(lambda text: "}" not in text), secret=st.text())
def test_any_placeholder_either_looks_up_a_value_or_fails_cleanly(
    expression: str, secret: str
) -> None:
    context = {"inputs": {"secret": secret}}
    try:
        rendered = render("{{" + expression + "}}", context)
    except TemplateError:
        return
    # Whatever rendered was found by lookup: the only value here is the secret.
    assert rendered == secret
    assert expression.strip() == "inputs.secret"


@given(text=st.text(), max_tokens=st.integers(min_value=0, max_value=100))
def test_truncation_keeps_a_prefix_within_four_chars_per_token(text: str, max_tokens: int) -> None:
    result = truncate_tokens(text, max_tokens)
    if len(text) <= max_tokens * 4:
        assert result == text
    else:
        assert result == text[: max_tokens * 4] + f"\n[... truncated to {max_tokens} tokens]"


def test_values_are_pruned_to_max_value_tokens_but_the_template_is_not() -> None:
    context = {"inputs": {"history": "h" * 100, "short": "ok"}}
    template = "Context: {{ inputs.history }} / {{ inputs.short }} " + "t" * 50
    got = render(template, context, max_value_tokens=5)
    assert got == ("Context: " + "h" * 20 + "\n[... truncated to 5 tokens] / ok " + "t" * 50)


def test_a_steps_max_input_tokens_prunes_each_inserted_value_not_its_own_text() -> None:
    step = awf.Step.model_validate(
        {"name": "s", "prompt": "Summarize: {{ inputs.doc }}", "maxInputTokens": 5,
         "system": "Notes: {{ inputs.doc }}"}
    )  # fmt: skip
    prompt = execute.render_prompt(step, {"inputs": {"doc": "y" * 100}})
    assert prompt.user == "Summarize: " + "y" * 20 + "\n[... truncated to 5 tokens]"
    assert prompt.system == "Notes: " + "y" * 20 + "\n[... truncated to 5 tokens]"
