"""Traces of runs (OpenTelemetry): the run's trace identity, derived or continued
(ids), and the spans each process records of the part of a run it handles (tracing)."""
