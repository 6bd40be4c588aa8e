"""A step's `compensate` call is checked like its tool: its templates see inputs, the
steps in dependsOn and the step's own output (nothing else), its URL must be one the
admin allows, and the Secrets its headers read reach the pools the step may run on."""

from __future__ import annotations

from typing import Any

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.reconcile import policy
from trimtab.reconcile.agentworkflow import secrets, validation
from trimtab.worker import compensation, tools


def _spec(compensate: dict[str, Any]) -> awf.AgentWorkflowSpec:
    steps = [
        {"name": "quote", "prompt": "price {{ inputs.item }}"},
        {
            "name": "book",
            "kind": "tool",
            "dependsOn": ["quote"],
            "tool": {"url": "https://shop.corp/orders", "body": '{"q": {{ quote }}}'},
            "compensate": compensate,
        },
        {"name": "notify", "prompt": "tell {{ book }}", "dependsOn": ["book"]},
    ]
    return awf.AgentWorkflowSpec.model_validate({"defaultPool": "small", "steps": steps})


def _found(spec: awf.AgentWorkflowSpec, allowed: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    problems = validation.find_problems(spec, policy=policy.Policy(tool_urls=allowed))
    return [(p.path, p.message) for p in problems]


def test_a_compensation_sees_its_own_output_its_dependencies_and_the_inputs() -> None:
    body = '{"order": "{{ book.id }}", "quote": {{ quote }}, "item": "{{ inputs.item }}"}'
    ok = _spec({"url": "https://shop.corp/orders/{{ book.id }}/cancel", "body": body})
    assert _found(ok) == []


def test_a_compensation_naming_a_step_it_does_not_see_is_refused() -> None:
    spec = _spec({"url": "https://shop.corp/cancel", "body": '{"n": "{{ notify }}"}'})
    [(path, message)] = _found(spec)
    assert path == "spec.steps[1].compensate.body"
    assert message.startswith("'notify' is not visible here")


def test_a_compensation_url_must_be_allowed_like_a_tools() -> None:
    spec = _spec({"url": "https://evil.example/cancel"})
    assert _found(spec, allowed=("https://shop.corp/",)) == [
        (
            "spec.steps[1].compensate.url",
            "https://evil.example is not an allowed tool URL here "
            "(the operator's security.allowedToolUrls)",
        )
    ]


def test_a_compensation_body_is_a_json_template_like_a_tools() -> None:
    found = _found(_spec({"url": "https://shop.corp/cancel", "body": '{"a": {{ book }}'}))
    assert [path for path, _ in found] == ["spec.steps[1].compensate.body"], found


def test_the_secrets_a_compensation_reads_reach_the_steps_pools() -> None:
    header = {"name": "Authorization", "valueFromSecret": {"name": "shop", "key": "token"}}
    spec = _spec({"url": "https://shop.corp/cancel", "headers": [header]})
    assert secrets.tool_secrets_by_pool(spec) == {"small": {("shop", "token")}}


def test_a_compensations_idempotency_key_is_one_per_step_and_no_attempts() -> None:
    key = compensation.idempotency_key("ns", "r1", "book")
    assert key == "ns/r1/book/compensate"
    assert key not in {tools.idempotency_key("ns", "r1", "book", n) for n in range(1, 10)}
