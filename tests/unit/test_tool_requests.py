"""Tool requests: a run's values are inserted into the JSON body, URL and headers as
values, never as syntax (the injection of issue findings), and the publish-time checks
that refuse templates which could not render."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.reconcile.agentworkflow import tool_requests, validation
from trimtab.reconcile.agentworkflow.templates import TemplateError
from trimtab.reconcile.policy import Policy

INJECTION = 'c1", "limit": 100000, "customerId": "victim'
BODY = '{"customerId": "{{ inputs.customer_id }}", "limit": 20}'


def _tool(**fields: Any) -> awf.ToolCall:
    return awf.ToolCall.model_validate({"url": "https://crm.corp/v1/history", **fields})


def test_an_input_cannot_add_fields_to_a_json_body() -> None:
    body = tool_requests.render_json(BODY, {"inputs": {"customer_id": INJECTION}})
    assert json.loads(body) == {"customerId": INJECTION, "limit": 20}


def test_a_bare_placeholder_is_one_json_value_and_text_in_strings_is_escaped() -> None:
    template = '{"items": {{ inputs.items }}, "note": "for {{ inputs.who }} ({{ n }})"}'
    context = {"inputs": {"items": [{"a": 1}, "x"], "who": 'a "quoted"\nname'}, "n": 3}
    assert json.loads(tool_requests.render_json(template, context)) == {
        "items": [{"a": 1}, "x"],
        "note": 'for a "quoted"\nname (3)',
    }
    # A placeholder as a key is text too; keys and values cannot merge into syntax.
    assert json.loads(tool_requests.render_json("{ {{ inputs.k }}: 1}", {"inputs": {"k": 7}})) == {
        "7": 1
    }


@given(st.text())
def test_any_string_value_stays_the_one_value_it_was(value: str) -> None:
    body = tool_requests.render_json(BODY, {"inputs": {"customer_id": value}})
    assert json.loads(body) == {"customerId": value, "limit": 20}


@pytest.mark.parametrize(
    ("template", "match"),
    [
        ('{"a": {{ x }}{{ y }}}', "not a JSON template"),
        ('{"a": "unterminated}', "not a JSON template"),
        ('{"a": "\ue000"}', "U\\+E000"),
    ],
)
def test_a_body_that_is_not_a_json_template_is_refused(template: str, match: str) -> None:
    with pytest.raises(TemplateError, match=match):
        tool_requests.render_json(template, {"x": 1, "y": 2})
    assert tool_requests.body_problem(_tool(body=template)) is not None


def test_url_values_are_percent_encoded_whole_and_dot_segments_refused() -> None:
    url = "https://crm.corp/v1/customers/{{ inputs.id }}?q={{ inputs.q }}"
    got = tool_requests.render_url(url, {"inputs": {"id": "../admin?x=1#f", "q": "a b&c"}})
    assert got == "https://crm.corp/v1/customers/..%2Fadmin%3Fx%3D1%23f?q=a%20b%26c"
    for dots in (".", ".."):
        with pytest.raises(TemplateError, match=re.escape("has a '.' or '..' segment")):
            tool_requests.render_url(url, {"inputs": {"id": dots, "q": ""}})
    # Two values adding up to "..", and a value completing a literal dot, are refused too.
    for template, values in (
        ("https://crm.corp/v1/{{ inputs.a }}{{ inputs.b }}/admin", {"a": ".", "b": "."}),
        ("https://crm.corp/v1/.{{ inputs.a }}/admin", {"a": "."}),
    ):
        with pytest.raises(TemplateError, match="segment"):
            tool_requests.render_url(template, {"inputs": values})
    assert tool_requests.render_url(url, {"inputs": {"id": "a.b", "q": "."}}).endswith("a.b?q=.")


def test_the_api_refuses_a_placeholder_before_the_path() -> None:
    for url in ("https://{{ inputs.host }}/x", "https://crm.corp{{ inputs.port }}/x"):
        with pytest.raises(ValueError, match="pattern"):
            _tool(url=url)
    assert _tool(url="https://crm.corp/v1/customers/{{ inputs.id }}/history").url


def test_form_bodies_encode_values_and_other_types_are_text() -> None:
    form = _tool(
        body="a={{ inputs.v }}&b=2",
        headers=[{"name": "Content-Type", "value": "application/x-www-form-urlencoded"}],
    )
    assert tool_requests.render_body(form, {"inputs": {"v": "1&b=9"}}) == "a=1%26b%3D9&b=2"
    text = _tool(
        body="hi {{ inputs.v }}", headers=[{"name": "Content-Type", "value": "text/plain"}]
    )
    assert tool_requests.render_body(text, {"inputs": {"v": '"x"'}}) == 'hi "x"'
    assert tool_requests.body_problem(text) is None  # not JSON: nothing to parse


def test_the_request_carries_rendered_headers_and_secret_values() -> None:
    tool = _tool(
        url="https://crm.corp/v1/{{ inputs.id }}",
        method="GET",
        headers=[
            {"name": "X-Tenant", "value": "{{ inputs.tenant }}"},
            {"name": "Authorization", "valueFromSecret": {"name": "crm", "key": "token"}},
        ],
    )
    got = tool_requests.request(
        tool, {"inputs": {"id": "c 1", "tenant": "acme"}}, {("crm", "token"): "Bearer t"}
    )
    assert got == tool_requests.Request(
        "GET",
        "https://crm.corp/v1/c%201",
        {"Content-Type": "application/json", "X-Tenant": "acme", "Authorization": "Bearer t"},
        None,
    )


def _spec(*steps: dict[str, Any]) -> awf.AgentWorkflowSpec:
    return awf.AgentWorkflowSpec.model_validate({"defaultPool": "p", "steps": list(steps)})


def _problems(spec: awf.AgentWorkflowSpec, policy: Policy | None = None) -> list[str]:
    return [f"{p.path}: {p.message}" for p in validation.find_problems(spec, policy=policy)]


def test_a_template_naming_a_step_it_does_not_depend_on_is_refused_at_validation() -> None:
    spec = _spec(
        {"name": "a", "prompt": "{{ inputs.x }}"},
        {"name": "b", "prompt": "{{ a }} and {{ c.x }}", "dependsOn": ["a"]},
        {"name": "c", "prompt": "{{ nope }} {{ bad"},
    )
    assert _problems(spec) == [
        "spec.steps[1].prompt: 'c' is not visible here: a template sees inputs and the "
        "steps in dependsOn (a)",
        "spec.steps[2].prompt: unclosed '{{' at offset 11",
    ]


def test_tool_bodies_and_headers_are_checked_and_urls_held_to_the_allow_list() -> None:
    spec = _spec(
        {
            "name": "t",
            "kind": "tool",
            "tool": {
                "url": "https://evil.example/x/{{ inputs.id }}",
                "body": '{"a": {{ inputs.a }} {{ inputs.b }}}',
                "headers": [{"name": "X-A", "value": "{{ other }}"}],
            },
        }
    )
    found = _problems(spec, Policy(tool_urls=("https://crm.corp/v1",)))
    assert found[0].startswith("spec.steps[0].tool.headers[0].value: 'other' is not visible")
    assert found[1].startswith("spec.steps[0].tool.body: the body is not a JSON template")
    assert found[2] == (
        "spec.steps[0].tool.url: https://evil.example is not an allowed tool URL here "
        "(the operator's security.allowedToolUrls)"
    )
    assert len(found) == 3
    allowed = Policy(tool_urls=("https://crm.corp/v1",))
    assert allowed.allows_tool_url("https://crm.corp/v1/customers/{{ inputs.id }}")
    assert not allowed.allows_tool_url("https://crm.corp/v10/{{ inputs.id }}")
    assert not allowed.allows_tool_url("https://crm.corp/v1{{ inputs.id }}")


def test_a_value_as_a_key_cannot_replace_another_key_nor_a_body_repeat_one() -> None:
    template = '{"role": "user", "{{ inputs.k }}": "x"}'
    with pytest.raises(TemplateError, match="repeats the key 'role'"):
        tool_requests.render_json(template, {"inputs": {"k": "role"}})
    assert json.loads(tool_requests.render_json(template, {"inputs": {"k": "other"}})) == {
        "role": "user",
        "other": "x",
    }
    assert (
        tool_requests.body_problem(_tool(body='{"a": 1, "a": 2}')) == "the body repeats the key 'a'"
    )


def test_content_type_is_one_header_whatever_its_case_and_never_a_template() -> None:
    tool = _tool(
        body="a={{ inputs.v }}", headers=[{"name": "content-type", "value": tool_requests.FORM}]
    )
    got = tool_requests.request(tool, {"inputs": {"v": "1"}}, {})
    assert got.headers == {"content-type": tool_requests.FORM}
    assert got.body == "a=1"
    templated = _spec(
        {"name": "t", "kind": "tool", "tool": {"url": "https://crm.corp/x", "headers": [
            {"name": "Content-Type", "value": "{{ inputs.ct }}"}]}}
    )  # fmt: skip
    assert _problems(templated) == [
        "spec.steps[0].tool.headers[0].value: Content-Type cannot be a template: it decides "
        "how the body is rendered"
    ]


@pytest.mark.parametrize("key", [".", "..", "../../etc/passwd", "a/b"])
def test_a_secret_key_cannot_name_a_path(key: str) -> None:
    with pytest.raises(ValueError, match="pattern"):
        awf.Header.model_validate({"name": "A", "valueFromSecret": {"name": "s", "key": key}})
