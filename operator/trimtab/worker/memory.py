"""What a step remembers of its run's session: the turns it is shown before its
prompt, and the turns a succeeded run adds.

Pruning keeps the most recent whole turns (a user message and the answer to it) that
fit the step's memory.maxTokens: the latest context matters most, and a turn cut in
half would show the model a question without its answer. The session itself is read
and written by trimtab.queue.sessions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import connection, sessions
from trimtab.worker import errors, execute, tokens

Message = dict[str, Any]


def recent(
    messages: Sequence[Message], max_tokens: int, count: Callable[[str], int]
) -> tuple[Message, ...]:
    """The latest whole turns of `messages` within `max_tokens`, oldest first."""
    turns = _turns(messages)
    kept: list[list[Message]] = []
    used = 0
    for turn in reversed(turns):
        size = sum(count(str(m.get("content") or "")) + tokens.PER_MESSAGE for m in turn)
        if used + size > max_tokens:
            break
        kept.append(turn)
        used += size
    return tuple(m for turn in reversed(kept) for m in turn)


def _turns(messages: Sequence[Message]) -> list[list[Message]]:
    """Messages grouped into turns, each starting at a user message."""
    turns: list[list[Message]] = []
    for message in messages:
        if message.get("role") == "user" or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return turns


def remembers(step: awf.Step) -> bool:
    return step.memory is not None and step.memory.session


def run_turns(
    spec: awf.AgentWorkflowSpec, inputs: Any, outputs: Mapping[str, Any]
) -> list[Message]:
    """The turns a succeeded run adds to its session: each remembering step's prompt
    (rendered as it ran) and its output, in the workflow's order."""
    found: list[Message] = []
    for step in spec.steps:
        if not remembers(step) or step.name not in outputs:
            continue
        context = {"inputs": inputs, **{d: outputs.get(d) for d in step.depends_on}}
        try:
            prompt = execute.render_prompt(step, context)
        except errors.TemplateInputError:
            continue  # it rendered when it ran: an output since changed cannot matter here
        found += turn(prompt.user, outputs[step.name])
    return found


def turn(prompt: str, output: Any) -> list[Message]:
    """A step's turn as the session keeps it: its prompt and its answer."""
    answer = output if isinstance(output, str) else json.dumps(output, separators=(",", ":"))
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


class SessionMemory:
    """The sessions of one worker's namespace, over a binary client opened on first
    use (a pool none of whose steps remember opens none)."""

    def __init__(self, redis_url: str, namespace: str, count: Callable[[str], int]) -> None:
        self._url, self._namespace, self._count = redis_url, namespace, count
        self._store: sessions.SessionStore | None = None

    def _sessions(self) -> sessions.SessionStore:
        if self._store is None:
            client = connection.connect_binary(self._url, max_connections=4)
            self._store = sessions.SessionStore(client, self._namespace)
        return self._store

    async def shown(self, step: awf.Step, session: str | None) -> tuple[Message, ...]:
        """What `step` sees of `session` (nothing when it does not remember)."""
        if session is None or step.memory is None or not step.memory.session:
            return ()
        found = await self._sessions().messages(session)
        return recent(found, step.memory.max_tokens, self._count)

    async def remember(
        self, session: str, turns: Sequence[Message], *, ttl_seconds: int, run_id: str
    ) -> None:
        """Add run `run_id`'s turns to `session`, once however often it is called."""
        if turns:
            await self._sessions().append(session, turns, ttl_seconds=ttl_seconds, run_id=run_id)

    async def aclose(self) -> None:
        if self._store is not None:
            await self._store.client.aclose()
