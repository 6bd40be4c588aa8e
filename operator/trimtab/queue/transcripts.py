"""An agent step's transcript: the conversation so far, kept with its run after each
completed turn (checkpoint.lua), so the step survives its worker.

The transcript is the OpenAI messages of the conversation (system, user, each
assistant reply with its tool calls, each tool result), the turns taken and the
invalid tool calls counted. It lives in the run's hash under the step's
`transcript` field, expires with the run, and is what `trimtab runs get` shows.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from redis import asyncio as aioredis

from trimtab.queue import keys, scripts, wire
from trimtab.queue.intake import Delivery


@dataclasses.dataclass(frozen=True)
class Transcript:
    messages: tuple[dict[str, Any], ...]
    turns: int = 0  # model calls answered so far
    invalid_calls: int = 0  # tool calls refused so far (unknown tool, bad arguments)

    def to_json(self) -> str:
        doc = {"messages": list(self.messages), "turns": self.turns, "invalid": self.invalid_calls}
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Transcript:
        doc = json.loads(text)
        return cls(tuple(doc["messages"]), int(doc["turns"]), int(doc["invalid"]))

    def pending_calls(self) -> list[dict[str, Any]]:
        """The last reply's tool calls that have no result yet (its worker stopped
        between the reply and the results): the next worker makes them."""
        if not self.messages:
            return []
        last_reply = max(
            (i for i, m in enumerate(self.messages) if m.get("role") == "assistant"), default=-1
        )
        if last_reply < 0:
            return []
        answered = {
            m.get("tool_call_id")
            for m in self.messages[last_reply + 1 :]
            if m.get("role") == "tool"
        }
        calls = self.messages[last_reply].get("tool_calls") or []
        return [c for c in calls if c.get("id") not in answered]


async def keep(
    lua: scripts.Scripts,
    delivery: Delivery,
    transcript: Transcript,
    *,
    phase: str,
    tools: list[str],
    now_ms: int,
) -> bool:
    """Store `transcript` as the step's; False when the attempt is no longer this
    delivery's (nothing is stored: another worker runs the step now)."""
    task = delivery.task
    reply = await lua.call(
        "checkpoint",
        [keys.run(task.namespace, task.run_id), keys.run_events(task.namespace, task.run_id)],
        [
            task.step, task.attempt, delivery.fence or "", transcript.to_json(),
            transcript.turns, phase, ",".join(tools), now_ms,
        ],
    )  # fmt: skip
    return wire.Reply(reply[0]) is wire.Reply.OK


async def read(client: aioredis.Redis, namespace: str, run_id: str, step: str) -> Transcript | None:
    raw = await client.hget(
        keys.run(namespace, run_id), wire.step_field(step, wire.StepField.TRANSCRIPT)
    )
    return (
        None
        if raw is None
        else Transcript.from_json(raw.decode() if isinstance(raw, bytes) else raw)
    )
