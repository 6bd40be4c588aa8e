"""Acting on runs beyond submitting them: cancelling runs, and resolving what
the runtime could not (steps in human review and dead-lettered steps).

Review and dead-letter entries are referred to as `NAMESPACE/ID` (the stream entry id),
like runs. Approving (as is, or with an edited output checked against the step's
schema) continues the run; rejecting fails it; retrying a dead letter resumes its run.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from trimtab.api import rest
from trimtab.queue import cancel as cancel_mod
from trimtab.queue import completion, deadletter, review, runs, wire
from trimtab.reconcile.agentworkflow import schemas
from trimtab.sdk import client as client_mod


class InvalidEditError(ValueError):
    """The edited output does not satisfy the step's output schema."""


def _now_ms() -> float:
    return round(time.time() * 1000, 3)


REJECTED = rest.REJECTED


class RunEndedError(RuntimeError):
    """The run had ended (succeeded, failed or cancelled) before it could be cancelled."""


async def cancel(client: client_mod.Client, run: str) -> None:
    """End the run `cancelled`: no further step starts, what is under way is discarded
    and its calls abandoned. Raises RunNotFoundError, or RunEndedError when it had
    ended already."""
    namespace, run_id = client_mod.split_ref(run)
    reply = await cancel_mod.cancel(client.redis, client.lua, namespace, run_id, now_ms=_now_ms())
    if reply is wire.Reply.GONE:
        raise client_mod.RunNotFoundError(f"run {run} not found (never submitted, or expired)")
    if reply is wire.Reply.ENDED:
        state = await client.get(run)
        raise RunEndedError(f"run {run} has ended already ({state.status}); nothing to cancel")


async def reviews(
    client: client_mod.Client, namespace: str, count: int = 100
) -> list[review.ReviewItem]:
    return await review.list_items(client.redis, namespace, count)


async def review_item(client: client_mod.Client, ref: str) -> review.ReviewItem:
    return await review.get(client.redis, *client_mod.split_entry(ref))


async def review_details(client: client_mod.Client, ref: str) -> dict[str, Any]:
    """The entry with what a reviewer needs beside it: the run's inputs."""
    item = await review_item(client, ref)
    run = await runs.read(client.redis, item.namespace, item.run_id)
    return {**dataclasses.asdict(item), "inputs": run.inputs if run is not None else None}


async def approve(client: client_mod.Client, ref: str) -> wire.Reply:
    """Accept the output under review as the step's output; the run continues."""
    item = await review_item(client, ref)
    wf = await client.generation(item.namespace, item.workflow, item.generation)
    return await completion.approve(client.redis, client.lua, item, item.output, wf)


async def edit(client: client_mod.Client, ref: str, output: Any) -> wire.Reply:
    """Replace the output under review (checked against the step's schema); the run
    continues with the edited output."""
    item = await review_item(client, ref)
    wf = await client.generation(item.namespace, item.workflow, item.generation)
    step = wf.steps[item.step].spec
    schema = step.output.json_schema if step.output else None
    error = schemas.first_error(schema, output) if schema is not None else None
    if error is not None:
        raise InvalidEditError(f"the edited output fails the step's schema: {error.message}")
    return await completion.approve(client.redis, client.lua, item, output, wf)


async def reject(client: client_mod.Client, ref: str, reason: str = REJECTED) -> wire.Reply:
    """Fail the step and its run."""
    item = await review_item(client, ref)
    return await review.reject(client.lua, item, reason=reason, now_ms=_now_ms())


async def dead_letters(
    client: client_mod.Client, namespace: str, count: int = 100
) -> list[deadletter.DeadLetter]:
    return await deadletter.list_entries(client.redis, namespace, count)


async def dead_letter(client: client_mod.Client, ref: str) -> deadletter.DeadLetter:
    return await deadletter.get(client.redis, *client_mod.split_entry(ref))


async def retry_dead_letter(client: client_mod.Client, ref: str) -> deadletter.Resumed:
    """Resume the entry's run from its dead steps (all of them), with fresh retry budgets."""
    entry = await dead_letter(client, ref)
    return await deadletter.resume(client.redis, client.lua, entry, now_ms=_now_ms())


async def purge_dead_letters(
    client: client_mod.Client, namespace: str, ids: list[str] | None
) -> int:
    return await deadletter.purge(client.redis, namespace, ids)


def parse_output(text: str) -> Any:
    """An edited output from the command line: JSON, or `@FILE` holding JSON."""
    if text.startswith("@"):
        with open(text[1:], encoding="utf-8") as f:
            text = f.read()
    return json.loads(text)
