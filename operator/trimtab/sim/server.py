"""The simulator's HTTP face: OpenAI-compatible chat completions, tool endpoints, stats.

Each request draws everything random (fault, length, content) from its model's seeded
stream at once, before it sleeps, so one seed and one request sequence give one output
sequence. It then sleeps the simulated delay while counted as in flight, which is what
slows concurrent requests down past a model's capacity.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from trimtab.sim import behaviour, content, requests, streaming
from trimtab.sim.behaviour import Fault, Reply
from trimtab.sim.profiles import ModelProfile, SimConfig

DELAY_HEADER = "X-Sim-Delay-Seconds"
FAULT_HEADER = "X-Sim-Fault"
CONFIDENCE_HEADER = "X-Sim-Confidence-Mean"
LAST_PROMPT_CHARS = 4000


@dataclasses.dataclass
class Counters:
    """What /stats reports for one model or tool."""

    requests: int = 0
    in_flight: int = 0
    faults: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    last_prompt: str = ""  # the text of the last request's messages, its end kept

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "faults": dict(self.faults),
            "last_prompt": self.last_prompt,
        }


@dataclasses.dataclass
class SimState:
    """One server's mutable state: its random streams and its counters."""

    config: SimConfig
    rngs: dict[str, random.Random] = dataclasses.field(default_factory=dict)
    models: dict[str, Counters] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(Counters)
    )
    tools: dict[str, Counters] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(Counters)
    )

    def rng_for(self, model: str) -> random.Random:
        # One stream per model, so traffic to one model never shifts another's outputs.
        if model not in self.rngs:
            self.rngs[model] = behaviour.seeded_rng(self.config.seed, model)
        return self.rngs[model]


@dataclasses.dataclass(frozen=True)
class Overrides:
    """The per-request test hooks; a forced fault of None forces success."""

    fault_forced: bool = False
    fault: Fault | None = None
    confidence_mean: float | None = None


STATE = web.AppKey("sim_state", SimState)


def build_app(config: SimConfig) -> web.Application:
    """The simulator as an aiohttp application, with fresh random streams and counters."""
    app = web.Application()
    app[STATE] = SimState(config)
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_get("/v1/models", _models)
    app.router.add_post("/tools/{name}", _tool)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/stats", _stats)
    app.router.add_put("/admin/models/{name}", _set_model)
    app.on_response_prepare.append(_default_delay_header)
    return app


@contextlib.asynccontextmanager
async def running(
    config: SimConfig, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve in this event loop for the block; yields the base URL (port 0 picks a free one)."""
    runner = web.AppRunner(build_app(config), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        yield f"http://{bound_host}:{bound_port}"
    finally:
        await runner.cleanup()


async def serve(
    config: SimConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    on_listening: Callable[[str], None] | None = None,
) -> None:
    """Serve until cancelled; `on_listening` gets the base URL once the port is bound."""
    async with running(config, host=host, port=port) as url:
        if on_listening is not None:
            on_listening(url)
        await asyncio.Event().wait()


async def _default_delay_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault(DELAY_HEADER, "0.0")


def _bad_request(exc: requests.BadRequestError) -> web.Response:
    body = behaviour.error_body(str(exc), kind="invalid_request_error", code="invalid_request")
    return web.json_response(body, status=400)


async def _send(reply: Reply, counters: Counters) -> web.Response:
    counters.in_flight += 1
    try:
        await asyncio.sleep(reply.delay)
    finally:
        counters.in_flight -= 1
    headers = {DELAY_HEADER: repr(reply.delay), **reply.headers}
    return web.json_response(reply.body, status=reply.status, headers=headers)


async def _chat(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    try:
        chat = requests.parse_chat(await _json_body(request))
        overrides = _overrides(request)
    except requests.BadRequestError as exc:
        return _bad_request(exc)
    counters = state.models[chat.model]
    counters.requests += 1
    counters.last_prompt = chat.prompt[-LAST_PROMPT_CHARS:]
    # Counted before planning so this request's own delay sees the load it joins.
    reply, fault = _plan_chat(
        chat,
        state,
        _scripted(state, chat.model, counters.requests, overrides),
        in_flight=counters.in_flight + 1,
    )
    if fault is not None:
        counters.faults[fault.value] += 1
    if chat.stream and reply.status == 200:
        return await streaming.send(request, reply, counters, usage=chat.usage_streamed)
    return await _send(reply, counters)


async def _tool(request: web.Request) -> web.Response:
    state = request.app[STATE]
    name = request.match_info["name"]
    try:
        body = await _json_body(request) if request.can_read_body else None
        overrides = _overrides(request)
    except requests.BadRequestError as exc:
        return _bad_request(exc)
    counters = state.tools[name]
    counters.requests += 1
    delay = state.config.tool_delay_seconds
    reply = behaviour.fault_reply(overrides.fault, state.config.default, delay=delay)
    if reply is None:
        result = {
            "tool": name,
            "received": body,
            "idempotency_key": request.headers.get("Idempotency-Key"),
            # The caller's trace context, so a test can see it cross the call.
            "traceparent": request.headers.get("traceparent"),
            "result": content.tool_result(name, body),
        }
        reply = Reply(200, result, delay)
    elif overrides.fault is not None:
        counters.faults[overrides.fault.value] += 1
    return await _send(reply, counters)


async def _models(request: web.Request) -> web.Response:
    names = list(request.app[STATE].config.models)
    data = [{"id": n, "object": "model", "created": 0, "owned_by": "trimtab-sim"} for n in names]
    return web.json_response({"object": "list", "data": data})


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _set_model(request: web.Request) -> web.Response:
    """Change a model's profile while serving (an endpoint going down and coming back):
    the given fields replace the current profile's; the rest stay."""
    state = request.app[STATE]
    name = request.match_info["name"]
    try:
        fields = await _json_body(request)
        if not isinstance(fields, dict):
            raise requests.BadRequestError("the body must be a JSON object of profile fields")
        current = state.config.profile_for(name).model_dump()
        profile = ModelProfile.model_validate({**current, **fields, "name": name})
    except (requests.BadRequestError, ValueError) as exc:
        return web.json_response({"error": {"message": str(exc)}}, status=400)
    models = {**state.config.models, name: profile}
    state.config = state.config.model_copy(update={"models": models})
    return web.json_response(profile.model_dump())


async def _stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    groups = {"models": state.models, "tools": state.tools}
    return web.json_response(
        {group: {name: c.as_json() for name, c in ctrs.items()} for group, ctrs in groups.items()}
    )


def _scripted(state: SimState, model: str, index: int, overrides: Overrides) -> Overrides:
    """The model's scripted fault for its `index`-th request (1-based), unless the
    request forces one itself."""
    script = state.config.profile_for(model).script
    if overrides.fault_forced or index > len(script):
        return overrides
    step = script[index - 1]
    fault = None if step == "ok" else Fault(step)
    return dataclasses.replace(overrides, fault_forced=True, fault=fault)


def _plan_chat(
    chat: requests.ChatRequest, state: SimState, overrides: Overrides, *, in_flight: int
) -> tuple[Reply, Fault | None]:
    """Draw fault, length and content (always all three, to keep the stream aligned)."""
    profile = state.config.profile_for(chat.model)
    rng = _rng_for(chat, state)
    drawn = behaviour.choose_fault(profile, rng)
    fault = behaviour.applicable_fault(
        overrides.fault if overrides.fault_forced else drawn,
        json_requested=chat.json_requested,
        # Offered tools, a call's arguments have a schema to break.
        schema_given=chat.output_schema is not None or bool(chat.tools),
    )
    text = content.answer(
        rng,
        n_tokens=behaviour.output_token_count(profile, rng),
        schema=chat.output_schema,
        json_requested=chat.json_requested,
        fault=fault,
        confidence_mean=_confidence_mean(overrides, profile),
    )
    if profile.fixed_content is not None and fault is None:
        text = profile.fixed_content
    text, tokens, finish = behaviour.cap_completion(text, max_tokens=chat.token_cap)
    calls = None
    if chat.tools and chat.tool_rounds < profile.tool_turns:
        offered = [(t.function.name, t.function.parameters) for t in chat.tools]
        violate = fault is Fault.SCHEMA_VIOLATION
        calls = content.tool_calls(
            offered, rng, violate=violate, mean=_confidence_mean(overrides, profile)
        )
    body = content.chat_completion(
        f"chatcmpl-{rng.getrandbits(96):024x}",
        chat.model,
        text=text,
        usage=(behaviour.estimate_tokens(chat.prompt), tokens),
        finish_reason=finish,
        tool_calls=calls,
    )
    delay = behaviour.delay_seconds(profile, output_tokens=tokens, in_flight=in_flight)
    ttft = behaviour.delay_seconds(profile, output_tokens=0, in_flight=in_flight)
    success = Reply(200, body, delay, first_token_delay=ttft)
    return behaviour.fault_reply(fault, profile, delay=ttft) or success, fault


def _confidence_mean(overrides: Overrides, profile: ModelProfile) -> float:
    mean = overrides.confidence_mean
    return profile.confidence_mean if mean is None else mean


def _rng_for(chat: requests.ChatRequest, state: SimState) -> random.Random:
    # A request seed pins its output regardless of what came before, as OpenAI's does.
    if chat.seed is None:
        return state.rng_for(chat.model)
    return behaviour.seeded_rng(state.config.seed, chat.model, chat.seed, chat.prompt)


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise requests.BadRequestError(f"request body is not valid JSON: {exc}") from exc


def _overrides(request: web.Request) -> Overrides:
    fault_name = request.headers.get(FAULT_HEADER)
    mean_text = request.headers.get(CONFIDENCE_HEADER)
    try:
        fault = None if fault_name in (None, "none") else Fault(fault_name)
    except ValueError as exc:
        raise requests.BadRequestError(f"{FAULT_HEADER}: unknown fault {fault_name!r}") from exc
    try:
        mean = None if mean_text is None else float(mean_text)
    except ValueError as exc:
        raise requests.BadRequestError(f"{CONFIDENCE_HEADER}: not a number: {mean_text!r}") from exc
    return Overrides(fault_forced=fault_name is not None, fault=fault, confidence_mean=mean)
