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
from typing import Any, Literal

import pydantic
from aiohttp import web
from jsonschema import exceptions as schema_errors
from jsonschema import validators
from pydantic import BaseModel, Field, field_validator, model_validator

from trimtab.sim import behaviour, content
from trimtab.sim.behaviour import Fault, Reply
from trimtab.sim.profiles import ModelProfile, SimConfig

DELAY_HEADER = "X-Sim-Delay-Seconds"
FAULT_HEADER = "X-Sim-Fault"
CONFIDENCE_HEADER = "X-Sim-Confidence-Mean"


class BadRequestError(ValueError):
    """The request cannot be served as sent; the message names the problem."""


@dataclasses.dataclass
class Counters:
    """What /stats reports for one model or tool."""

    requests: int = 0
    in_flight: int = 0
    faults: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)

    def as_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "in_flight": self.in_flight, "faults": dict(self.faults)}


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


class _Message(BaseModel):
    role: str
    content: str | list[dict[str, Any]] | None = None


class _JsonSchema(BaseModel):
    name: str = "response"
    schema_: dict[str, Any] = Field(alias="schema")

    @field_validator("schema_")
    @classmethod
    def _is_a_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        try:
            validators.validator_for(schema).check_schema(schema)
        except schema_errors.SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from exc
        return schema


class _ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: _JsonSchema | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> _ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("type json_schema needs a json_schema object")
        return self


class ChatRequest(BaseModel):
    """The parts of an OpenAI chat-completions request the simulator acts on."""

    model: str = Field(min_length=1)
    messages: list[_Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    response_format: _ResponseFormat | None = None
    seed: int | None = None
    # Refused rather than ignored: a streaming client cannot read a plain JSON answer.
    stream: Literal[False] = False

    @property
    def token_cap(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def prompt(self) -> str:
        return "\n".join(_text_of(m.content) for m in self.messages)

    @property
    def json_requested(self) -> bool:
        return self.response_format is not None and self.response_format.type != "text"

    @property
    def output_schema(self) -> dict[str, Any] | None:
        fmt = self.response_format
        return None if fmt is None or fmt.json_schema is None else fmt.json_schema.schema_


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


def _bad_request(exc: BadRequestError) -> web.Response:
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


async def _chat(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        chat = _parse_chat(await _json_body(request))
        overrides = _overrides(request)
    except BadRequestError as exc:
        return _bad_request(exc)
    counters = state.models[chat.model]
    counters.requests += 1
    # Counted before planning so this request's own delay sees the load it joins.
    reply, fault = _plan_chat(chat, state, overrides, in_flight=counters.in_flight + 1)
    if fault is not None:
        counters.faults[fault.value] += 1
    return await _send(reply, counters)


async def _tool(request: web.Request) -> web.Response:
    state = request.app[STATE]
    name = request.match_info["name"]
    try:
        body = await _json_body(request) if request.can_read_body else None
        overrides = _overrides(request)
    except BadRequestError as exc:
        return _bad_request(exc)
    counters = state.tools[name]
    counters.requests += 1
    delay = state.config.tool_delay_seconds
    reply = behaviour.fault_reply(overrides.fault, state.config.default, delay=delay)
    if reply is None:
        result = {"tool": name, "received": body, "result": content.tool_result(name, body)}
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


async def _stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    groups = {"models": state.models, "tools": state.tools}
    return web.json_response(
        {group: {name: c.as_json() for name, c in ctrs.items()} for group, ctrs in groups.items()}
    )


def _plan_chat(
    chat: ChatRequest, state: SimState, overrides: Overrides, *, in_flight: int
) -> tuple[Reply, Fault | None]:
    """Draw fault, length and content (always all three, to keep the stream aligned)."""
    profile = state.config.profile_for(chat.model)
    rng = _rng_for(chat, state)
    drawn = behaviour.choose_fault(profile, rng)
    fault = behaviour.applicable_fault(
        overrides.fault if overrides.fault_forced else drawn,
        json_requested=chat.json_requested,
        schema_given=chat.output_schema is not None,
    )
    text = content.answer(
        rng,
        n_tokens=behaviour.output_token_count(profile, rng),
        schema=chat.output_schema,
        json_requested=chat.json_requested,
        fault=fault,
        confidence_mean=_confidence_mean(overrides, profile),
    )
    text, tokens, finish = behaviour.cap_completion(text, max_tokens=chat.token_cap)
    body = content.chat_completion(
        f"chatcmpl-{rng.getrandbits(96):024x}",
        chat.model,
        text=text,
        usage=(behaviour.estimate_tokens(chat.prompt), tokens),
        finish_reason=finish,
    )
    delay = behaviour.delay_seconds(profile, output_tokens=tokens, in_flight=in_flight)
    ttft = behaviour.delay_seconds(profile, output_tokens=0, in_flight=in_flight)
    return behaviour.fault_reply(fault, profile, delay=ttft) or Reply(200, body, delay), fault


def _confidence_mean(overrides: Overrides, profile: ModelProfile) -> float:
    mean = overrides.confidence_mean
    return profile.confidence_mean if mean is None else mean


def _rng_for(chat: ChatRequest, state: SimState) -> random.Random:
    # A request seed pins its output regardless of what came before, as OpenAI's does.
    if chat.seed is None:
        return state.rng_for(chat.model)
    return behaviour.seeded_rng(state.config.seed, chat.model, chat.seed, chat.prompt)


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise BadRequestError(f"request body is not valid JSON: {exc}") from exc


def _overrides(request: web.Request) -> Overrides:
    fault_name = request.headers.get(FAULT_HEADER)
    mean_text = request.headers.get(CONFIDENCE_HEADER)
    try:
        fault = None if fault_name in (None, "none") else Fault(fault_name)
    except ValueError as exc:
        raise BadRequestError(f"{FAULT_HEADER}: unknown fault {fault_name!r}") from exc
    try:
        mean = None if mean_text is None else float(mean_text)
    except ValueError as exc:
        raise BadRequestError(f"{CONFIDENCE_HEADER}: not a number: {mean_text!r}") from exc
    return Overrides(fault_forced=fault_name is not None, fault=fault, confidence_mean=mean)


def _parse_chat(body: Any) -> ChatRequest:
    try:
        return ChatRequest.model_validate(body)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise BadRequestError(f"{where}: {first['msg']}") from exc


def _text_of(message_content: str | list[dict[str, Any]] | None) -> str:
    # Content parts: only text parts count toward the prompt.
    if isinstance(message_content, list):
        return " ".join(str(part.get("text", "")) for part in message_content)
    return message_content or ""
