"""Run traces without a backend: trace identities, the on/off switch, spans recorded to
the SDK's in-memory exporter, and what each span says."""

from __future__ import annotations

import contextvars
import subprocess
import sys

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from trimtab.api.v1alpha1 import agentpool
from trimtab.handlers import ended_runs
from trimtab.metrics import ErrorType
from trimtab.queue import ended, messages, runs, wire
from trimtab.telemetry import export, ids, tracing
from trimtab.worker import call_spans, ending, execute, spans
from trimtab.worker.model_client import ModelReply

CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _recording() -> tuple[tracing.Tracing, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(id_generator=export.PinnableIds(tracing._PINNED))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return tracing.Tracing(provider), memory


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "garbage",
        "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # unknown version
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # zero trace id
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # zero span id
        "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",  # uppercase
    ],
)
def test_a_bad_traceparent_names_no_parent(text: str | None) -> None:
    assert ids.parse_traceparent(text) is None


def test_a_traceparent_round_trips() -> None:
    parent = ids.parse_traceparent(CALLER)
    assert parent == ids.Parent(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True)
    assert parent.header() == CALLER
    unsampled = ids.parse_traceparent(CALLER[:-2] + "00")
    assert unsampled is not None
    assert not unsampled.sampled


def test_a_runs_trace_is_derived_from_its_name_alone() -> None:
    one, again = ids.run_trace("ns", "r1"), ids.run_trace("ns", "r1")
    assert one == again, "every process names the same run span"
    other = ids.run_trace("ns", "r2")
    assert other.trace_id != one.trace_id
    assert other.span_id != one.span_id
    assert ids.run_trace("other", "r1").trace_id != one.trace_id
    assert one.parent_span_id is None
    assert one.sampled is None


def test_a_run_with_a_caller_continues_the_callers_trace() -> None:
    run = ids.run_trace("ns", "r1", CALLER)
    assert run.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert run.parent_span_id == 0xB7AD6B7169203331
    assert run.sampled is True
    assert run.span_id == ids.run_trace("ns", "r1").span_id


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_tracing_is_on_only_with_an_endpoint_and_not_disabled(
    env: dict[str, str], on: bool
) -> None:
    assert tracing.enabled_by(env) is on


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
        {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
        {"OTEL_TRACES_EXPORTER": "zipkin"},
    ],
)
def test_settings_it_cannot_honour_are_refused_in_one_line(env: dict[str, str]) -> None:
    with pytest.raises(tracing.ConfigError) as refused:
        tracing.Tracing.from_env("x", env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", **env})
    assert "\n" not in str(refused.value)


def test_off_it_loads_no_sdk_and_every_call_is_a_no_op() -> None:
    code = (
        "import sys\n"
        "from trimtab.telemetry import tracing, ids\n"
        "t = tracing.Tracing.from_env('w', env={})\n"
        "with t.span('x') as s: assert s is None\n"
        "assert t.headers({'a': 'b'}) == {'a': 'b'}\n"
        "assert t.run_parent(ids.run_trace('n', 'r')) is None\n"
        "t.record_run(ids.run_trace('n', 'r'), 'run', start_ns=1, end_ns=2)\n"
        "assert not t.enabled\n"
        "print('opentelemetry.sdk' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_runs_span_has_the_ids_its_steps_name_as_their_parent() -> None:
    traced, memory = _recording()
    run = ids.run_trace("ns", "r1")
    with traced.span("step a", parent=traced.run_parent(run)):
        traced.record("queue wait", start_ns=10, end_ns=20)
    traced.record_run(run, "run wf", start_ns=5, end_ns=50, error=("run_failed", "b failed"))
    wait, step, whole = memory.get_finished_spans()
    assert whole.context.trace_id == run.trace_id
    assert whole.context.span_id == run.span_id
    assert whole.parent is None
    assert step.parent is not None
    assert step.parent.span_id == run.span_id
    assert step.context.trace_id == run.trace_id
    assert wait.parent is not None
    assert wait.parent.span_id == step.context.span_id
    assert (whole.start_time, whole.end_time) == (5, 50)
    assert whole.status.status_code is StatusCode.ERROR
    assert whole.attributes is not None
    assert whole.attributes["error.type"] == "run_failed"


def test_a_continued_runs_span_is_its_callers_child() -> None:
    traced, memory = _recording()
    traced.record_run(ids.run_trace("ns", "r1", CALLER), "run wf", start_ns=1, end_ns=2)
    (whole,) = memory.get_finished_spans()
    assert whole.parent is not None
    assert whole.parent.span_id == 0xB7AD6B7169203331
    assert whole.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C


def test_pinned_ids_hold_for_one_span_only() -> None:
    traced, memory = _recording()
    run = ids.run_trace("ns", "r1")
    traced.record_run(run, "run", start_ns=1, end_ns=2)
    with traced.span("after"):
        pass
    _, after = memory.get_finished_spans()
    assert after.context.span_id != run.span_id
    assert after.context.trace_id != run.trace_id


def test_an_outgoing_call_carries_the_current_spans_traceparent() -> None:
    traced, _ = _recording()
    with traced.span("call") as span:
        assert span is not None
        sent = traced.headers({"Authorization": "Bearer x"})
    parent = ids.parse_traceparent(sent["traceparent"])
    assert parent is not None
    assert parent.span_id == span.get_span_context().span_id
    assert sent["Authorization"] == "Bearer x"


def test_an_unsampled_runs_context_is_passed_on_flagged_and_builds_no_span() -> None:
    traced, memory = _recording()
    unsampled = ids.run_trace("ns", "r1", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")
    assert traced.recording_here(), "no current trace: the sampler decides"
    assert traced.trace_id_of(unsampled) is None, "no exemplar for a trace nobody keeps"
    with traced.within(traced.run_parent(unsampled)):
        assert not traced.recording_here()
        assert traced.current_trace_id() is None
        sent = traced.headers({})
    parent = ids.parse_traceparent(sent["traceparent"])
    assert parent is not None
    assert (parent.trace_id, parent.sampled) == (unsampled.trace_id, False)
    assert memory.get_finished_spans() == ()
    sampled = ids.run_trace("ns", "r1", CALLER)
    with traced.within(traced.run_parent(sampled)):
        assert traced.recording_here()
        assert traced.current_trace_id() == f"{sampled.trace_id:032x}"
    assert traced.trace_id_of(sampled) == f"{sampled.trace_id:032x}"


def test_an_exception_marks_the_span_failed_and_goes_on() -> None:
    traced, memory = _recording()
    with pytest.raises(KeyError), traced.span("boom"):
        raise KeyError("x")
    (span,) = memory.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "KeyError"


def test_the_callers_traceparent_comes_from_headers_or_the_current_span() -> None:
    assert tracing.caller_traceparent({"traceparent": CALLER}) == CALLER
    assert tracing.caller_traceparent({}) is None
    traced, _ = _recording()
    ctx = contextvars.copy_context()
    with traced.span("app") as span:
        assert span is not None
        found = tracing.caller_traceparent()
    assert found is not None
    assert found.split("-")[2] == f"{span.get_span_context().span_id:016x}"
    assert ctx.run(tracing.caller_traceparent) is None


def _task() -> messages.Task:
    return messages.Task("ns", "r1", "b", 2, "wf", 3, enqueued_ms=1.0)


def test_an_attempt_span_says_whose_attempt_it_is_and_how_it_ended() -> None:
    attrs = spans.attempt_attributes(_task(), "pool-a", "worker-1")
    assert attrs["trimtab.step"] == "b"
    assert attrs["trimtab.attempt"] == 2
    assert attrs["trimtab.pool"] == "pool-a"
    assert attrs["trimtab.worker"] == "worker-1"
    done = ending.Completed(execute.StepResult(output="x", prompt_tokens=3, completion_tokens=4))
    assert spans.ending_attributes(done)["trimtab.tokens"] == 7
    assert spans.ending_attributes(done)["trimtab.outcome"] == "succeeded"
    retry = ending.Retry(due_ms=1.0, reason="http_5xx: boom", error=ErrorType.HTTP_5XX)
    assert spans.ending_attributes(retry)["error.type"] == "http_5xx"
    assert spans.ending_attributes(retry)["trimtab.outcome"] == "retried"


def test_a_model_calls_span_follows_the_genai_conventions() -> None:
    model = agentpool.ModelEndpoint(
        endpoint="https://models.example/v1", name="small", tier="small"
    )
    attrs = call_spans.model_call_attributes(model, {"max_tokens": 64, "stream": True})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "small"
    assert attrs["gen_ai.request.max_tokens"] == 64
    assert (attrs["server.address"], attrs["server.port"]) == ("models.example", 443)
    reply = ModelReply("hi", 5, 7, "stop", model="small-2024")
    out = call_spans.model_reply_attributes(reply)
    assert out["gen_ai.usage.input_tokens"] == 5
    assert out["gen_ai.usage.output_tokens"] == 7
    assert out["gen_ai.response.finish_reasons"] == ["stop"]
    assert out["gen_ai.response.model"] == "small-2024"
    assert call_spans.model_call_name(model) == "chat small"


def _state(status: wire.RunStatus) -> runs.RunState:
    return runs.RunState(
        run_id="r1", namespace="ns", workflow="wf", generation=2, status=status, inputs={},
        created_ms=1000.0, ended_ms=3000.0, tokens=42, cost=0.5, version=1, steps={},
        error="b: boom", session="s1",
    )  # fmt: skip


def test_a_runs_span_says_how_it_ended_and_a_failed_one_is_an_error() -> None:
    failed = ended.EndedRun(
        "1-0", "ns", "r1", wire.RunStatus.FAILED, 3000.0, _state(wire.RunStatus.FAILED)
    )
    name, attrs, error = ended_runs.run_span(failed)
    assert name == "run wf"
    assert attrs["trimtab.outcome"] == "failed"
    assert attrs["trimtab.tokens"] == 42
    assert attrs["trimtab.session"] == "s1"
    assert error == ("run_failed", "b: boom")
    done = _state(wire.RunStatus.SUCCEEDED)
    ok = ended.EndedRun("1-0", "ns", "r1", wire.RunStatus.SUCCEEDED, 3000.0, done)
    assert ended_runs.run_span(ok)[2] is None


def test_an_expired_run_records_no_span() -> None:
    traced, memory = _recording()
    gone = ended.EndedRun("1-0", "ns", "r1", wire.RunStatus.SUCCEEDED, 3000.0, None)
    assert ended_runs.record(traced, gone) is False
    assert memory.get_finished_spans() == ()
