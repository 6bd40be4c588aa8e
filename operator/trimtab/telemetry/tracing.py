"""The spans a Trimtab process records, exported over OTLP (http/protobuf) with the
official OpenTelemetry SDK, configured by the standard `OTEL_*` variables.

Tracing is on when an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) and neither `OTEL_SDK_DISABLED=true` nor
`OTEL_TRACES_EXPORTER=none` says otherwise. Off, no SDK is imported and every call
here returns at once: a worker that does not trace pays one attribute check per span.

Sampling is the SDK's (`OTEL_TRACES_SAMPLER`, default parent-based always-on; use
`parentbased_traceidratio` with `OTEL_TRACES_SAMPLER_ARG`). A run that starts its own
trace is sampled by its trace id alone, so the API server, every worker and the
operator make the same decision for it without telling each other.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from trimtab.telemetry import ids

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

Attributes = Mapping[str, str | int | float | bool | list[str]]
_PROPAGATOR = TraceContextTextMapPropagator()
# The (trace id, span id) the next span this task starts must have: a run's, derived
# (ids), so its span is the one its steps' spans already name as their parent.
_PINNED: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "pinned", default=None
)


class ConfigError(ValueError):
    """OTEL_* settings this process cannot honour."""


def enabled_by(env: Mapping[str, str]) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() in ("none", ""):
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def _checked(env: Mapping[str, str]) -> None:
    exporter = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if exporter != "otlp":
        raise ConfigError(f"OTEL_TRACES_EXPORTER={exporter}: Trimtab exports traces as otlp")
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = env.get(name, "").strip()
        if protocol and protocol != "http/protobuf":
            raise ConfigError(f"{name}={protocol}: Trimtab exports OTLP over http/protobuf")


class Tracing:
    """One process's tracer, or none (`enabled` False: every method is a no-op)."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self._provider = provider
        self.enabled = provider is not None
        self._tracer = provider.get_tracer("trimtab") if provider is not None else None

    @classmethod
    def from_env(
        cls,
        service: str,
        attributes: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Tracing:
        """Tracing as the OTEL_* variables configure it; `service` names the process
        unless OTEL_SERVICE_NAME does."""
        env = os.environ if env is None else env
        if not enabled_by(env):
            return cls()
        _checked(env)
        # Loaded only when on, so a process that does not trace never loads the SDK.
        from trimtab.telemetry import export  # noqa: PLC0415

        named = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": service}
        return cls(export.provider({**named, **(attributes or {})}, _PINNED))

    def run_parent(self, run: ids.RunTrace) -> otel_context.Context | None:
        """A context whose current span is the run's (recorded elsewhere, once the run
        ends), for the spans of one of its steps."""
        if self._provider is None:
            return None
        flags = trace.TraceFlags(trace.TraceFlags.SAMPLED if self.sampled(run) else 0)
        span = trace.SpanContext(run.trace_id, run.span_id, is_remote=True, trace_flags=flags)
        return trace.set_span_in_context(trace.NonRecordingSpan(span))

    def sampled(self, run: ids.RunTrace) -> bool:
        """Whether the run's trace is recorded: its caller's decision, or this process's
        sampler's, by the trace id alone."""
        if run.sampled is not None or self._provider is None:
            return bool(run.sampled)
        decision = self._provider.sampler.should_sample(None, run.trace_id, "run")
        return bool(decision.decision.is_sampled())  # type: ignore[no-untyped-call]

    def trace_id_of(self, run: ids.RunTrace) -> str | None:
        """The run's trace id as hex when its trace is recorded, for metric exemplars
        (an exemplar must link to a trace that exists); None otherwise."""
        if self._provider is None or not self.sampled(run):
            return None
        return f"{run.trace_id:032x}"

    def current_trace_id(self) -> str | None:
        """The trace id of the span current here, when it is recorded; else None."""
        if self._provider is None:
            return None
        found = trace.get_current_span().get_span_context()
        return f"{found.trace_id:032x}" if found.is_valid and found.trace_flags.sampled else None

    def recording_here(self) -> bool:
        """Whether a span started here would be recorded: tracing is on and the
        current trace is sampled (no current trace: the sampler decides, so True).
        Callers skip building the attributes of a span nobody will see."""
        if self._provider is None:
            return False
        found = trace.get_current_span().get_span_context()
        return not found.is_valid or found.trace_flags.sampled

    @contextlib.contextmanager
    def within(self, parent: otel_context.Context | None) -> Iterator[None]:
        """`parent` current for the block, with no span of its own: an unsampled run's
        steps still pass its context on, flagged not sampled, to what they call."""
        if parent is None:
            yield
            return
        token = otel_context.attach(parent)
        try:
            yield
        finally:
            otel_context.detach(token)

    @contextlib.contextmanager
    def span(
        self,
        name: str,
        *,
        parent: otel_context.Context | None = None,
        kind: trace.SpanKind = trace.SpanKind.INTERNAL,
        attributes: Attributes | None = None,
        start_ns: int | None = None,
    ) -> Iterator[trace.Span | None]:
        """A span current for the block (under `parent`, else the current span),
        ended when it exits; an exception marks it failed and goes on."""
        if self._tracer is None:
            yield None
            return
        span = self._tracer.start_span(
            name, context=parent, kind=kind, attributes=attributes, start_time=start_ns
        )
        with trace.use_span(span, end_on_exit=True, record_exception=False):
            try:
                yield span
            except BaseException as exc:
                failed(span, type(exc).__name__, str(exc))
                raise

    def record(
        self,
        name: str,
        *,
        start_ns: int,
        end_ns: int,
        parent: otel_context.Context | None = None,
        attributes: Attributes | None = None,
        error: tuple[str, str] | None = None,
    ) -> None:
        """A span that has already happened (a queue wait), under `parent`, else the
        current span; `error` is (type, description)."""
        if self._tracer is None:
            return
        span = self._tracer.start_span(
            name, context=parent, attributes=attributes, start_time=start_ns
        )
        if error is not None:
            failed(span, *error)
        span.end(end_time=end_ns)

    def record_run(
        self,
        run: ids.RunTrace,
        name: str,
        *,
        start_ns: int,
        end_ns: int,
        attributes: Attributes | None = None,
        error: tuple[str, str] | None = None,
    ) -> None:
        """A whole run's span, once it has ended: with the ids its steps' spans named
        as their parent, under its caller's span if it continued a trace."""
        if self._tracer is None:
            return
        parent = otel_context.Context()  # not whatever span is current here
        if run.parent_span_id is not None:
            flags = trace.TraceFlags(trace.TraceFlags.SAMPLED if self.sampled(run) else 0)
            caller = trace.SpanContext(run.trace_id, run.parent_span_id, True, flags)
            parent = trace.set_span_in_context(trace.NonRecordingSpan(caller), parent)
        token = _PINNED.set((run.trace_id, run.span_id))
        try:
            span = self._tracer.start_span(
                name, context=parent, attributes=attributes, start_time=start_ns
            )
        finally:
            _PINNED.reset(token)
        if error is not None:
            failed(span, *error)
        span.end(end_time=end_ns)

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """`headers` plus the current span's `traceparent`, for an outgoing call."""
        out = dict(headers)
        if self._tracer is not None:
            _PROPAGATOR.inject(out)
        return out

    def shutdown(self) -> None:
        """Export what is buffered; at process exit."""
        if self._provider is not None:
            self._provider.shutdown()


def failed(span: trace.Span | None, error_type: str, description: str) -> None:
    if span is None:
        return
    span.set_attribute("error.type", error_type)
    span.set_status(trace.Status(trace.StatusCode.ERROR, description[:500]))


def caller_traceparent(headers: Mapping[str, str] | None = None) -> str | None:
    """The traceparent of the caller's span: from `headers` (an HTTP request's), else the
    span current in this process (an application that traces, calling the SDK)."""
    ctx: otel_context.Context | None = None
    if headers is not None:
        ctx = _PROPAGATOR.extract(headers)
    found = trace.get_current_span(ctx).get_span_context()
    if not found.is_valid:
        return None
    parent = ids.Parent(found.trace_id, found.span_id, found.trace_flags.sampled)
    return parent.header()
