"""Pure pieces of the runtime: message encoding, backoff, state encoding, output parsing,
secret headers, worker settings, CLI inputs, compiled routes."""

from __future__ import annotations

import json
import pathlib
import random
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.cli import common
from trimtab.queue import messages, state
from trimtab.reconcile.agentworkflow import compile as compile_mod
from trimtab.worker import backoff, errors, execute, settings, tools

TASK = messages.Task(
    namespace="ns",
    run_id="r1",
    step="s",
    attempt=2,
    workflow="wf",
    generation=3,
    enqueued_ms=1700000000000,
)


def test_task_round_trips_through_stream_fields() -> None:
    fields = TASK.fields()
    assert all(isinstance(v, str) for v in fields.values())
    assert messages.decode(fields) == TASK
    assert messages.decode({k.encode(): v.encode() for k, v in fields.items()}) == TASK


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"ns": "x"}, "lacks field", id="missing"),
        pytest.param({**TASK.fields(), "att": "two"}, "malformed number", id="not-a-number"),
    ],
)
def test_bad_messages_say_what_is_wrong(fields: dict[str, str], message: str) -> None:
    with pytest.raises(messages.MessageError, match=message):
        messages.decode(fields)


POLICY = awf.Backoff(initial_seconds=1, factor=2, max_seconds=10, jitter=0.2)


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [
        pytest.param(1, 0.8, 1.2, id="first"),
        pytest.param(3, 3.2, 4.8, id="third"),
        pytest.param(10, 8.0, 12.0, id="capped"),
    ],
)
def test_backoff_grows_exponentially_within_jitter(attempt: int, low: float, high: float) -> None:
    rng = random.Random(1)
    delays = [backoff.delay_seconds(POLICY, attempt, rng=rng) for _ in range(200)]
    assert low <= min(delays)
    assert max(delays) <= high
    assert len(set(delays)) > 100  # jittered, not one wave


def test_retry_after_is_a_floor() -> None:
    delay = backoff.delay_seconds(POLICY, 1, rng=random.Random(0), retry_after=7.5)
    assert delay == 7.5


@pytest.mark.parametrize("asked", [1e12, 301.0])
def test_retry_after_is_capped(asked: float) -> None:
    assert backoff.delay_seconds(POLICY, 1, rng=random.Random(0), retry_after=asked) == 300.0
    capped = POLICY.model_copy(update={"max_retry_after_seconds": 20.0})
    assert backoff.delay_seconds(capped, 1, rng=random.Random(0), retry_after=asked) == 20.0


def test_an_endless_retry_after_is_ignored() -> None:
    plain = backoff.delay_seconds(POLICY, 1, rng=random.Random(0))
    endless = backoff.delay_seconds(POLICY, 1, rng=random.Random(0), retry_after=float("inf"))
    assert endless == plain


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda kids: st.lists(kids) | st.dictionaries(st.text(), kids),
    ),
    st.integers(min_value=0, max_value=200),
)
def test_state_encoding_round_trips(value: Any, threshold: int) -> None:
    assert state.decode(state.encode(value, compress_above=threshold)) == value


def test_unknown_state_encoding_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown state encoding"):
        state.decode(b"x{}")


SCHEMA = awf.OutputSpec.model_validate(
    {
        "schema": {
            "type": "object",
            "required": ["answer"],
            "properties": {"answer": {"type": "string"}},
        }
    }
)


@pytest.mark.parametrize(
    ("content", "output", "expected"),
    [
        pytest.param("plain text", None, "plain text", id="no-schema-keeps-text"),
        pytest.param('{"answer": "42"}', SCHEMA, {"answer": "42"}, id="valid-json"),
    ],
)
def test_parse_output(content: str, output: awf.OutputSpec | None, expected: Any) -> None:
    assert execute.parse_output(content, output) == expected


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("not json", "output is not JSON", id="malformed"),
        pytest.param('{"answer": 42}', "fails its schema at answer", id="wrong-type"),
        pytest.param("{}", "fails its schema at (root)", id="missing-field"),
    ],
)
def test_invalid_output_is_a_retryable_error(content: str, message: str) -> None:
    with pytest.raises(errors.InvalidOutputError, match=re.escape(message)) as err:
        execute.parse_output(content, SCHEMA)
    assert err.value.retryable


def test_tool_headers_come_from_literals_templates_and_mounted_secrets(
    tmp_path: pathlib.Path,
) -> None:
    tool = awf.ToolCall.model_validate(
        {
            "url": "http://t:1/x",
            "headers": [
                {"name": "X-Plain", "value": "v"},
                {"name": "X-Tenant", "value": "t-{{ inputs.tenant }}"},
                {"name": "Authorization", "valueFromSecret": {"name": "crm-creds", "key": "token"}},
            ],
        }
    )
    (tmp_path / "crm-creds").mkdir()
    (tmp_path / "crm-creds" / "token").write_text("Bearer s3cret")
    request = tools.rendered(tool, {"inputs": {"tenant": "acme"}}, tmp_path)
    assert request.headers == {
        "Content-Type": "application/json",
        "X-Plain": "v",
        "X-Tenant": "t-acme",
        "Authorization": "Bearer s3cret",
    }
    # A value cannot add a header line.
    with pytest.raises(errors.TemplateInputError, match="line break"):
        tools.rendered(tool, {"inputs": {"tenant": "a\r\nX-Admin: 1"}}, tmp_path)


POOL_DOC = {
    "apiVersion": "trimtab.io/v1alpha1",
    "kind": "AgentPool",
    "metadata": {"name": "small", "namespace": "team"},
    "spec": {"model": {"endpoint": "http://m:1/v1", "name": "m"}},
}


def test_settings_from_manifest_and_env(tmp_path: pathlib.Path) -> None:
    manifest = tmp_path / "pool.yaml"
    manifest.write_text(json.dumps(POOL_DOC))
    cfg = settings.resolve(
        pool_ref=None, manifest=manifest, redis_url="redis://x", env={settings.API_KEY_ENV: "k"}
    )
    assert (cfg.namespace, cfg.pool, cfg.api_key) == ("team", "small", "k")
    from_env = settings.resolve(
        pool_ref="other/big",
        manifest=None,
        redis_url="redis://x",
        env={settings.POOL_SPEC_ENV: json.dumps(POOL_DOC["spec"])},
    )
    assert (from_env.namespace, from_env.pool) == ("other", "big")
    assert from_env.spec.model.name == "m"


@pytest.mark.parametrize(
    ("pool_ref", "env", "message"),
    [
        pytest.param(
            "nonamespace",
            {settings.POOL_SPEC_ENV: json.dumps(POOL_DOC["spec"])},
            "NAMESPACE/NAME",
            id="bad-ref",
        ),
        pytest.param("a/b", {}, "no pool spec", id="no-spec"),
    ],
)
def test_settings_errors_are_clear(pool_ref: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(settings.SettingsError, match=message):
        settings.resolve(pool_ref=pool_ref, manifest=None, redis_url="redis://x", env=env)


def test_cli_inputs_parse_json_values_and_files(tmp_path: pathlib.Path) -> None:
    extra = tmp_path / "in.json"
    extra.write_text('{"items": [1, 2]}')
    assert common.parse_inputs(["n=3", "name=Ada", "flag=true", f"@{extra}"]) == {
        "n": 3,
        "name": "Ada",
        "flag": True,
        "items": [1, 2],
    }
    with pytest.raises(ValueError, match="key=value"):
        common.parse_inputs(["oops"])


ROUTED = awf.AgentWorkflowSpec.model_validate(
    {
        "defaultPool": "small",
        "steps": [
            {"name": "intent", "prompt": "x"},
            {
                "name": "respond",
                "prompt": "y",
                "dependsOn": ["intent"],
                "routes": [
                    {"when": "intent.complexity == 'high'", "pool": "large"},
                    {"pool": "small"},
                ],
            },
        ],
    }
)


@pytest.mark.parametrize(
    ("intent", "pool"),
    [
        pytest.param({"complexity": "high"}, "large", id="matches"),
        pytest.param({"complexity": "low"}, "small", id="falls-through"),
        pytest.param({}, "small", id="missing-field-does-not-match"),
        pytest.param("free text", "small", id="non-object-output"),
    ],
)
def test_routes_choose_a_pool_from_dependency_outputs(intent: Any, pool: str) -> None:
    wf = compile_mod.compile_workflow(namespace="n", name="w", generation=1, spec=ROUTED)
    context = wf.route_context("respond", {}, {"intent": intent})
    assert context is not None
    assert wf.choose_pool("respond", context) == pool


def test_route_context_waits_for_every_dependency() -> None:
    wf = compile_mod.compile_workflow(namespace="n", name="w", generation=1, spec=ROUTED)
    assert wf.route_context("respond", {}, {}) is None
    assert wf.steps["intent"].pool == "small"
    assert not wf.steps["intent"].routed
    assert compile_mod.from_document(compile_mod.to_document(wf)).steps.keys() == wf.steps.keys()


async def test_the_http_client_holds_at_most_its_connections_and_no_cookies() -> None:
    from trimtab.worker import http  # noqa: PLC0415

    clients = http.ClientSet(max_connections=20, timeout_seconds=5)
    session = clients.pick()
    assert clients.pick() is session, "one pooled session, made once"
    assert session.connector is not None
    assert session.connector.limit == 20
    assert session.cookie_jar.__class__.__name__ == "DummyCookieJar"
    await clients.aclose()
    assert clients.pick() is not session, "a closed session is made again"
    await clients.aclose()


def _state(step: Any) -> Any:
    from trimtab.queue import runs, wire  # noqa: PLC0415

    view = runs.StepView(
        state=wire.StepState(step["state"]), attempt=1, pool="p", output=None, error=None,
        tokens=0, cost=0.0, queued_ms=step["queued_ms"], started_ms=step.get("started_ms"),
        ended_ms=None,
    )  # fmt: skip
    return runs.RunState(
        run_id="r", namespace="n", workflow="w", generation=1, status=wire.RunStatus.RUNNING,
        inputs={}, created_ms=0.0, ended_ms=None, tokens=0, cost=0.0, version=0,
        steps={"a": view},
    )  # fmt: skip


def test_runs_get_calls_out_a_step_no_worker_took() -> None:
    from trimtab.cli import runtime as runtime_cmd  # noqa: PLC0415

    waiting = _state({"state": "queued", "queued_ms": 1_000.0})
    assert runtime_cmd.unserved(waiting, now_ms=20_000.0) == []  # 19 s: not yet
    [line] = runtime_cmd.unserved(waiting, now_ms=61_000.0)
    assert line.startswith("step a has waited 60 s on pool p, and no worker has taken it")
    started = _state({"state": "running", "queued_ms": 1_000.0, "started_ms": 2_000.0})
    assert runtime_cmd.unserved(started, now_ms=61_000.0) == []
