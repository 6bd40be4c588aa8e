"""The inference simulator: an OpenAI-compatible chat-completions server without a GPU.

Tests, the demo and the benchmarks need a model server that behaves like a real one
under load (time to first token, per-token decode time, slowdown past its batch
capacity) and fails like one (429 with Retry-After, 500, hangs, malformed or
schema-violating JSON), yet is deterministic for a given seed. `profiles` holds the
configuration, `behaviour` and `content` the pure decisions, `server` the HTTP layer.
"""
