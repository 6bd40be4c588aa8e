"""Reading a streamed chat completion (trimtab.worker.sse), whatever its chunking."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trimtab.worker import sse


def _event(data: object) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def _chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


STREAM = (
    b": a comment line\n\n"
    + _event(_chunk({"role": "assistant", "content": None}))
    + _event(_chunk({"content": "Hel"}))
    + b"data: " + json.dumps(_chunk({"content": "lo, w\u00f6rld"})).encode() + b"\r\n\r\n"
    + _event(_chunk({}, "stop"))
    + _event({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}})
    + b"data: [DONE]\n\n"
)  # fmt: skip


def _read(parts: list[bytes]) -> sse.Accumulator:
    decoder, reply = sse.Decoder(), sse.Accumulator()
    for part in parts:
        for payload in decoder.feed(part):
            reply.add(payload)
    for payload in decoder.close():
        reply.add(payload)
    return reply


def test_a_stream_adds_up_to_its_reply() -> None:
    reply = _read([STREAM])
    assert (reply.content, reply.finish_reason, reply.done) == ("Hello, w\u00f6rld", "stop", True)
    assert (reply.prompt_tokens, reply.completion_tokens) == (7, 3)


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=30))
def test_any_chunking_of_the_bytes_reads_the_same(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    parts = [STREAM[a:b] for a, b in itertools.pairwise(bounds)]
    assert _read(parts).content == "Hello, w\u00f6rld"


def test_multi_line_data_is_one_event_and_the_last_event_needs_no_blank_line() -> None:
    decoder = sse.Decoder()
    assert decoder.feed(b"data: a\ndata: b\n\ndata: [DONE]") == ["a\nb"]
    assert decoder.close() == ["[DONE]"]


def test_tool_call_fragments_are_joined_by_index() -> None:
    reply = sse.Accumulator()
    reply.add(
        json.dumps(
            _chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "c1",
                            "function": {"name": "lookup", "arguments": '{"id"'},
                        }
                    ]
                }
            )
        )
    )
    reply.add(
        json.dumps(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": ': "7"}'}}]}))
    )
    reply.add(json.dumps(_chunk({}, "tool_calls")))
    call = reply.tool_calls[0]
    assert (call.id, call.name, json.loads(call.arguments)) == ("c1", "lookup", {"id": "7"})
    assert reply.finish_reason == "tool_calls"


def test_an_error_event_mid_stream_is_an_error_with_the_servers_message() -> None:
    with pytest.raises(sse.StreamError, match="context overflow"):
        sse.Accumulator().add(json.dumps({"error": {"code": 500, "message": "context overflow"}}))


@pytest.mark.parametrize("payload", ["not json", "[1, 2]"])
def test_a_payload_that_is_not_a_chunk_is_an_error(payload: str) -> None:
    with pytest.raises(sse.StreamError):
        sse.Accumulator().add(payload)
