"""The review queue and the dead-letter queue over HTTP. Reading needs get/list on
`agentworkflows/reviews` (or `/deadletters`); approving, editing, rejecting and
retrying need `update`, purging `delete`, each named by the entry's workflow."""

from __future__ import annotations

from typing import Annotated, Any

import fastapi

from trimtab.api import rest
from trimtab.queue import deadletter, review, runs
from trimtab.sdk import client as sdk_client
from trimtab.sdk import operations
from trimtab.server import auth, context, encode
from trimtab.server.context import Caller, caller

router = fastapi.APIRouter(
    prefix="/v1/namespaces/{namespace}", tags=["review"], dependencies=context.NAMESPACE_CHECKED
)
CallerDep = Annotated[Caller, fastapi.Depends(caller)]
Count = Annotated[int, fastapi.Query(ge=1, le=1000)]
R, D = auth.Sub.REVIEWS, auth.Sub.DEAD_LETTERS


def _ref(namespace: str, entry: str) -> str:
    sdk_client.split_entry(f"{namespace}/{entry}")
    return f"{namespace}/{entry}"


async def _visible(who: Caller, namespace: str, workflows: set[str], sub: auth.Sub) -> set[str]:
    """The workflows among `workflows` whose entries the caller may read."""
    need = auth.Need("get", sub=sub)
    return {w for w in workflows if await who.may(need, namespace, w)}


@router.get("/reviews", response_model=rest.ReviewList)
async def list_reviews(namespace: str, who: CallerDep, count: Count = 100) -> rest.ReviewList:
    await who.require(auth.Need("list", sub=R), namespace)
    items = await operations.reviews(who.ctx.sdk, namespace, count)
    seen = await _visible(who, namespace, {i.workflow for i in items}, R)
    return rest.ReviewList(items=[encode.review_item(i) for i in items if i.workflow in seen])


async def _before_reading(who: Caller, namespace: str, sub: auth.Sub, verb: str) -> None:
    """A caller who may not read the namespace's entries is refused before one is read
    (so an entry's existence is not told), by the verb it came for."""
    if not await who.may(auth.Need("get", sub=sub), namespace):
        await who.require(auth.Need(verb, sub=sub), namespace)


async def _item(who: Caller, namespace: str, entry: str, verb: str) -> review.ReviewItem:
    await _before_reading(who, namespace, R, verb)
    item = await operations.review_item(who.ctx.sdk, _ref(namespace, entry))
    await who.require(auth.Need(verb, sub=R), namespace, item.workflow)
    return item


async def _schema(who: Caller, item: review.ReviewItem) -> dict[str, Any] | None:
    wf = await who.ctx.sdk.generation(item.namespace, item.workflow, item.generation)
    step = wf.steps[item.step].spec
    return step.output.json_schema if step.output else None


@router.get("/reviews/{entry}", response_model=rest.ReviewBody)
async def get_review(namespace: str, entry: str, who: CallerDep) -> rest.ReviewBody:
    """The entry, the run's inputs, and the schema an edited output must satisfy."""
    item = await _item(who, namespace, entry, "get")
    run = await runs.read(who.ctx.sdk.redis, namespace, item.run_id)
    inputs = run.inputs if run is not None else None
    return encode.review_item(item, inputs=inputs, schema=await _schema(who, item))


@router.post("/reviews/{entry}/approve", response_model=rest.Decision)
async def approve(namespace: str, entry: str, who: CallerDep) -> rest.Decision:
    await _item(who, namespace, entry, "update")
    reply = await operations.approve(who.ctx.sdk, _ref(namespace, entry))
    return rest.Decision(review=_ref(namespace, entry), outcome=reply.value)


@router.post("/reviews/{entry}/edit", response_model=rest.Decision)
async def edit(namespace: str, entry: str, body: rest.EditRequest, who: CallerDep) -> rest.Decision:
    """Approve with this output instead (422 when it fails the step's schema)."""
    await _item(who, namespace, entry, "update")
    reply = await operations.edit(who.ctx.sdk, _ref(namespace, entry), body.output)
    return rest.Decision(review=_ref(namespace, entry), outcome=reply.value)


@router.post("/reviews/{entry}/reject", response_model=rest.Decision)
async def reject(
    namespace: str, entry: str, who: CallerDep, body: rest.RejectRequest | None = None
) -> rest.Decision:
    await _item(who, namespace, entry, "update")
    reason = (body or rest.RejectRequest()).reason
    reply = await operations.reject(who.ctx.sdk, _ref(namespace, entry), reason)
    return rest.Decision(review=_ref(namespace, entry), outcome=reply.value)


@router.get("/deadletters", response_model=rest.DeadLetterList)
async def list_dead_letters(
    namespace: str, who: CallerDep, count: Count = 100
) -> rest.DeadLetterList:
    await who.require(auth.Need("list", sub=D), namespace)
    entries = await operations.dead_letters(who.ctx.sdk, namespace, count)
    seen = await _visible(who, namespace, {e.workflow or "" for e in entries}, D)
    return rest.DeadLetterList(
        items=[encode.dead_letter(e) for e in entries if (e.workflow or "") in seen]
    )


async def _entry(who: Caller, namespace: str, entry: str, verb: str) -> deadletter.DeadLetter:
    await _before_reading(who, namespace, D, verb)
    found = await operations.dead_letter(who.ctx.sdk, _ref(namespace, entry))
    await who.require(auth.Need(verb, sub=D), namespace, found.workflow or "")
    return found


@router.get("/deadletters/{entry}", response_model=rest.DeadLetterBody)
async def get_dead_letter(namespace: str, entry: str, who: CallerDep) -> rest.DeadLetterBody:
    return encode.dead_letter(await _entry(who, namespace, entry, "get"))


@router.post("/deadletters/{entry}/retry", response_model=rest.Retried)
async def retry(namespace: str, entry: str, who: CallerDep) -> rest.Retried:
    """Resume the entry's run from its dead steps (outcome `resumed`, or why not)."""
    await _entry(who, namespace, entry, "update")
    resumed = await operations.retry_dead_letter(who.ctx.sdk, _ref(namespace, entry))
    return rest.Retried(
        entry=_ref(namespace, entry), outcome=resumed.outcome.value, steps=list(resumed.steps)
    )


@router.post("/deadletters/purge", response_model=rest.Purged)
async def purge(namespace: str, body: rest.PurgeRequest, who: CallerDep) -> rest.Purged:
    """Delete the given entries, or all of them (needs `delete` on the namespace's
    agentworkflows/deadletters)."""
    await who.require(auth.Need("delete", sub=D), namespace)
    for entry in body.ids or ():
        _ref(namespace, entry)
    return rest.Purged(purged=await operations.purge_dead_letters(who.ctx.sdk, namespace, body.ids))
