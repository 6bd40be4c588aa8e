"""The SDK client. A run is referred to as `NAMESPACE/ID`, so results and events need
nothing but the reference.

`Client(url)` talks to Redis directly for a redis:// (or rediss://, unix://) URL, and
to the API server (trimtab.sdk.http_client) for an http(s):// one, with the same calls
and the same return types; publishing workflows needs Redis (the operator's job)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.api.v1alpha1 import base
from trimtab.queue import (
    agentbudgets,
    arrivals,
    connection,
    deadletter,
    levels,
    review,
    runindex,
    runs,
    scripts,
    sessions,
    wire,
    workflows,
)
from trimtab.reconcile.agentbudget import windows
from trimtab.reconcile.agentworkflow import compile as compile_mod
from trimtab.reconcile.agentworkflow import schemas, templates
from trimtab.sdk import operations  # builds on this module: it imports it as a module
from trimtab.telemetry import ids, tracing

T = TypeVar("T")
DEFAULT_REDIS_URL = os.environ.get("TRIMTAB_REDIS_URL", "redis://127.0.0.1:6379/0")
GENERATION_CACHE_SECONDS = 1.0


# Inputs are copied into the run, every prompt that names them and the model's context:
# a run's inputs past this size are refused before anything is written.
MAX_INPUT_BYTES = 1024 * 1024


class InputsTooLargeError(ValueError):
    """A run's inputs are larger than MAX_INPUT_BYTES as JSON."""


def _concurrency_key(key: awf.ConcurrencyKey | None, inputs: Any) -> tuple[str, int] | None:
    """The run's concurrencyKey value and its limit; raises ValueError when the inputs
    lack what the key names (the run is not created)."""
    if key is None:
        return None
    try:
        return templates.render(key.key, {"inputs": inputs}), key.limit
    except templates.TemplateError as exc:
        raise ValueError(f"concurrencyKey {key.key!r}: {exc}") from None


def check_inputs(inputs: Any) -> None:
    """Raises InputsTooLargeError (or TypeError when `inputs` is not JSON)."""
    size = len(json.dumps(inputs).encode())
    if size > MAX_INPUT_BYTES:
        raise InputsTooLargeError(
            f"the run's inputs are {size} bytes as JSON; the limit is {MAX_INPUT_BYTES}: "
            "pass large documents by reference (a URL, an object key)"
        )


class InvalidInputsError(ValueError):
    """A run's inputs do not satisfy its workflow's spec.inputs schema."""


def check_inputs_schema(schema: dict[str, Any] | None, inputs: Any) -> None:
    """Raises InvalidInputsError with the first error, and where it is."""
    if schema is None:
        return
    error = schemas.first_error(schema, inputs)
    if error is not None:
        where = "".join(f"[{p!r}]" for p in error.absolute_path) or " (the whole object)"
        raise InvalidInputsError(
            f"inputs{where} fail the workflow's spec.inputs schema: {error.message}"
        )


class BudgetExhaustedError(RuntimeError):
    """An AgentBudget covering the workflow is spent for its current window."""


class RunNotFoundError(LookupError):
    """No such run (never submitted, or its state expired)."""


@dataclasses.dataclass(frozen=True)
class RunResult:
    run: str
    status: wire.RunStatus
    outputs: dict[str, Any]
    tokens: int
    cost: float
    seconds: float | None
    errors: dict[str, str]
    error: str | None = None  # why the run ended when no step says (its deadline)


NAMESPACE = re.compile(base.NAME_PATTERN)  # a Kubernetes namespace: a DNS label
NAME = re.compile(r"^[A-Za-z0-9._-]{1,253}$")  # run ids and workflow names: no ':' or '/'
ENTRY_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")  # a Redis stream entry's id


def split_ref(ref: str, *, what: str = "a run") -> tuple[str, str]:
    """(namespace, name) of `NAMESPACE/NAME`; a malformed reference is a ValueError."""
    namespace, sep, name = ref.partition("/")
    if not sep or not NAMESPACE.match(namespace) or not NAME.match(name):
        raise ValueError(f"{what} is NAMESPACE/ID, got {ref!r}")
    return namespace, name


def split_entry(ref: str) -> tuple[str, str]:
    """(namespace, entry id) of a review or dead-letter entry, `NAMESPACE/1700000000000-0`."""
    namespace, sep, entry = ref.partition("/")
    if not sep or not NAMESPACE.match(namespace) or not ENTRY_ID.match(entry):
        raise ValueError(f"an entry is NAMESPACE/ID with an ID like 1700000000000-0, got {ref!r}")
    return namespace, entry


class RunNotFinishedError(TimeoutError):
    """`result` waited its whole timeout; the message says why the run is still going."""


def new_run_id() -> str:
    """Time-ordered, so run ids sort by submission."""
    return f"{int(time.time() * 1000):012x}{uuid.uuid4().hex[:12]}"


HTTP_SCHEMES = ("http://", "https://")


class Client:
    """Async access to runs; one Redis connection pool, safe to share across tasks."""

    def __new__(cls, redis_url: str = DEFAULT_REDIS_URL, *, token: str | None = None) -> Client:
        if cls is Client and redis_url.startswith(HTTP_SCHEMES):
            # The HTTP transport subclasses this one; it imports this module.
            from trimtab.sdk import http_client  # noqa: PLC0415

            return super().__new__(http_client.HttpClient)
        return super().__new__(cls)

    def __init__(self, redis_url: str = DEFAULT_REDIS_URL, *, token: str | None = None) -> None:
        """`token` is for an http(s) URL: the bearer token ($TRIMTAB_TOKEN by default)."""
        self.redis = connection.connect(redis_url)
        self.lua = scripts.Scripts(self.redis)
        self._compiled = workflows.Compiled(self.redis)
        self._current: dict[tuple[str, str], tuple[float, int]] = {}
        self._budget_defs: dict[str, tuple[float, dict[str, windows.Definition]]] = {}
        self._redis_url = redis_url
        self._binary: connection.Redis | None = None  # sessions' compressed state, on first use

    async def workflow(self, namespace: str, name: str) -> compile_mod.CompiledWorkflow:
        """The current published generation, rechecked at most once a second."""
        seen = self._current.get((namespace, name))
        if seen is None or time.monotonic() - seen[0] >= GENERATION_CACHE_SECONDS:
            gen = await workflows.current_generation(self.redis, namespace, name)
            seen = self._current[(namespace, name)] = (time.monotonic(), gen)
        return await self._compiled.get(namespace, name, seen[1])

    async def _budgets(self, namespace: str) -> dict[str, windows.Definition]:
        """The namespace's AgentBudgets, reread at most once a second: a submit refused
        for a spent budget is a courtesy (reserve.lua enforces every budget as each
        step starts), and a read per submit would double its round trips."""
        seen = self._budget_defs.get(namespace)
        if seen is None or time.monotonic() - seen[0] >= GENERATION_CACHE_SECONDS:
            found = await agentbudgets.definitions(self.redis, namespace)
            seen = self._budget_defs[namespace] = (time.monotonic(), found)
        return seen[1]

    async def generation(
        self, namespace: str, name: str, generation: int
    ) -> compile_mod.CompiledWorkflow:
        """One published generation (the one a run was started with), compiled once."""
        return await self._compiled.get(namespace, name, generation)

    async def recorded_arrivals(
        self, namespace: str, pool: str, *, since: float, until: float
    ) -> dict[int, int]:
        """A pool's arrivals per second (since the epoch) as the operator recorded them."""
        return await arrivals.read(
            self.redis, namespace=namespace, pool=pool, since=since, until=until
        )

    async def publish(
        self,
        namespace: str,
        name: str,
        spec: awf.AgentWorkflowSpec,
        *,
        generation: int | None = None,
    ) -> int:
        """Compile and publish; without a generation, the next one (or the current one
        when its spec is unchanged)."""
        if generation is None:
            generation = await self._next_generation(namespace, name, spec)
        compiled = compile_mod.compile_workflow(
            namespace=namespace, name=name, generation=generation, spec=spec
        )
        return await workflows.publish(self.redis, compile_mod.to_document(compiled))

    async def _next_generation(self, namespace: str, name: str, spec: awf.AgentWorkflowSpec) -> int:
        try:
            current = await workflows.load(self.redis, namespace, name)
        except workflows.WorkflowNotFoundError:
            return 1
        same = awf.AgentWorkflowSpec.model_validate(current["spec"]) == spec
        return int(current["generation"]) + (0 if same else 1)

    async def submit(
        self,
        namespace: str,
        workflow: str,
        inputs: Any,
        *,
        idempotency_key: str | None = None,
        priority: awf.Priority | None = None,
        session: str | None = None,
        deadline_seconds: int | None = None,
        traceparent: str | None = None,
    ) -> str:
        """Start a run; returns `NAMESPACE/ID`. The same idempotency key on the same
        workflow returns the same run. Inputs over MAX_INPUT_BYTES are refused, and so
        is a run an AgentBudget has no room for (BudgetExhaustedError). `priority`
        (High, Normal or Low) overrides the workflow's spec.priority for this run.
        `session` names the conversation the run continues (steps with memory.session
        see its earlier turns). `deadline_seconds` overrides the workflow's
        spec.deadlineSeconds for this run. The run's trace continues the span current
        in the caller's OpenTelemetry context, or `traceparent` when given ("" for a
        trace of its own)."""
        check_inputs(inputs)
        if deadline_seconds is not None and deadline_seconds < 1:
            raise ValueError(f"a run's deadline is at least 1 s, got {deadline_seconds}")
        if session is not None:
            sessions.check_session(session)
        wf = await self.workflow(namespace, workflow)
        check_inputs_schema(wf.spec.inputs, inputs)
        if idempotency_key is not None:  # a retried submission gets its run, budget or not
            known = await runs.submitted_as(self.redis, namespace, workflow, idempotency_key)
            if known is not None:
                return f"{namespace}/{known}"
        spent = await agentbudgets.exhausted(
            self.redis, namespace, workflow, now=time.time(), known=await self._budgets(namespace)
        )
        if spent is not None:
            raise BudgetExhaustedError(f"run of {namespace}/{workflow} refused: {spent}")
        roots = {root: wf.choose_pool(root, {"inputs": inputs}) for root in wf.plan.roots}
        new = runs.NewRun(
            namespace=namespace,
            workflow=workflow,
            generation=wf.generation,
            steps=list(wf.steps),
            run_id=new_run_id(),
            inputs=inputs,
            root_pools=roots,
            ttl_seconds=wf.ttl_seconds,
            now_ms=round(time.time() * 1000, 3),
            idempotency_key=idempotency_key,
            deadline_seconds=deadline_seconds or wf.spec.deadline_seconds,
            concurrency_limit=wf.spec.concurrency_limit,
            concurrency_key=_concurrency_key(wf.spec.concurrency_key, inputs),
            priority=levels.FROM_API[priority or wf.spec.priority],
            session=session,
            traceparent=_parent_span(traceparent),
        )
        _, run_id = await runs.submit(self.lua, new)
        return f"{namespace}/{run_id}"

    async def get(self, run: str) -> runs.RunState:
        state = await runs.read(self.redis, *split_ref(run))
        if state is None:
            raise RunNotFoundError(f"run {run} not found (never submitted, or expired)")
        return state

    async def events(self, run: str, *, block_ms: int = 1000) -> AsyncIterator[dict[str, str]]:
        """Events as they happen, from the first, until the run is done."""
        namespace, run_id = split_ref(run)
        last = "0"
        while True:
            for event_id, event in await runs.events(
                self.redis, namespace, run_id, after=last, block_ms=block_ms
            ):
                last = event_id
                yield event
                if event.get("type") == wire.EventType.RUN_DONE:
                    return

    async def result(self, run: str, *, timeout: float = 60.0) -> RunResult:  # noqa: ASYNC109
        """Wait for the run to finish (raises TimeoutError) and return its outcome."""

        async def finished() -> None:
            async for _ in self.events(run):
                pass

        try:
            await asyncio.wait_for(finished(), timeout=timeout)
        except TimeoutError:
            state = await self.get(run)
            if state.status is wire.RunStatus.REVIEW:
                namespace = split_ref(run)[0]
                raise RunNotFinishedError(
                    f"run {run} waits for human review: `trimtab review list -n {namespace}`"
                ) from None
            raise RunNotFinishedError(
                f"run {run} did not finish within {timeout:g} s (still {state.status})"
            ) from None
        return _result(run, await self.get(run))

    async def cancel(self, run: str) -> None:
        await operations.cancel(self, run)

    async def list_runs(
        self,
        namespace: str,
        *,
        where: runindex.RunFilter | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> runindex.RunPage:
        """A page of the namespace's runs, newest first; follow `next_cursor` for more."""
        return await runindex.list_runs(
            self.redis, namespace, where=where or runindex.RunFilter(), cursor=cursor, limit=limit
        )

    async def reviews(self, namespace: str, count: int = 100) -> list[review.ReviewItem]:
        return await operations.reviews(self, namespace, count)

    async def review_details(self, ref: str) -> dict[str, Any]:
        return await operations.review_details(self, ref)

    async def approve(self, ref: str) -> wire.Reply:
        return await operations.approve(self, ref)

    async def edit(self, ref: str, output: Any) -> wire.Reply:
        return await operations.edit(self, ref, output)

    async def reject(self, ref: str, reason: str | None = None) -> wire.Reply:
        return await operations.reject(self, ref, reason or operations.REJECTED)

    async def dead_letters(self, namespace: str, count: int = 100) -> list[deadletter.DeadLetter]:
        return await operations.dead_letters(self, namespace, count)

    async def dead_letter(self, ref: str) -> deadletter.DeadLetter:
        return await operations.dead_letter(self, ref)

    async def retry_dead_letter(self, ref: str) -> deadletter.Resumed:
        return await operations.retry_dead_letter(self, ref)

    async def purge_dead_letters(self, namespace: str, ids: list[str] | None) -> int:
        return await operations.purge_dead_letters(self, namespace, ids)

    def _sessions(self, namespace: str) -> sessions.SessionStore:
        if self._binary is None:
            self._binary = connection.connect_binary(self._redis_url, max_connections=4)
        return sessions.SessionStore(self._binary, namespace)

    async def session(self, namespace: str, session: str) -> list[dict[str, Any]]:
        """A session's turns as chat messages, oldest first (none: new or expired)."""
        return await self._sessions(namespace).messages(sessions.check_session(session))

    async def delete_session(self, namespace: str, session: str) -> bool:
        """Forget a session; False when there was none."""
        return await self._sessions(namespace).delete(sessions.check_session(session))

    async def aclose(self) -> None:
        await self.redis.aclose()
        if self._binary is not None:
            await self._binary.aclose()


def _result(run: str, state: runs.RunState) -> RunResult:
    seconds = (state.ended_ms - state.created_ms) / 1000 if state.ended_ms else None
    return RunResult(
        run=run,
        status=state.status,
        outputs=state.outputs(),
        tokens=state.tokens,
        cost=state.cost,
        seconds=seconds,
        errors={n: s.error for n, s in state.steps.items() if s.error},
        error=state.error,
    )


def _parent_span(given: str | None) -> str | None:
    """The traceparent a new run keeps: a valid one given, else the caller's span."""
    if given is None:
        return tracing.caller_traceparent()
    parent = ids.parse_traceparent(given)
    return None if parent is None else parent.header()
