"""The OpenTelemetry SDK's side of tracing: a tracer provider that batches spans to the
OTLP/HTTP exporter, which reads its endpoint, headers, timeout and TLS from the
standard OTEL_EXPORTER_OTLP_* variables, and its sampler from OTEL_TRACES_SAMPLER.
Imported by trimtab.telemetry.tracing only when tracing is on.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator


class PinnableIds(RandomIdGenerator):
    """Random ids, except a span id pinned for the span being started: a run's span
    has the id its steps' spans already name as their parent (trimtab.telemetry.ids)."""

    def __init__(self, pinned: contextvars.ContextVar[tuple[int, int] | None]) -> None:
        self._pinned = pinned

    def generate_span_id(self) -> int:
        pinned = self._pinned.get()
        return pinned[1] if pinned is not None else super().generate_span_id()

    def generate_trace_id(self) -> int:
        pinned = self._pinned.get()
        return pinned[0] if pinned is not None else super().generate_trace_id()


def provider(
    attributes: Mapping[str, str], pinned: contextvars.ContextVar[tuple[int, int] | None]
) -> TracerProvider:
    """A provider exporting over OTLP/HTTP in batches (OTEL_BSP_* tune them)."""
    made = TracerProvider(
        resource=Resource.create(dict(attributes)), id_generator=PinnableIds(pinned)
    )
    made.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return made
