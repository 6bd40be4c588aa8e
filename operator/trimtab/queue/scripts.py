"""The Lua scripts behind every atomic transition, loaded once per Redis client.

redis-py's Script objects run by EVALSHA and reload on NOSCRIPT, so a restarted Redis
(which forgets its script cache) costs one extra round trip, not an error. Every script
starts with lua/_wire.lua, the states and replies generated from trimtab.queue.wire.

A full Redis (`noeviction` at `maxmemory`) refuses scripts that write, which would stop
running work along with new work. So every script but `submit` is flagged `allow-oom`:
steps already under way can always start, finish, retry or fail, while submit.lua
itself refuses new runs once memory passes wire.ADMIT_BELOW_PERCENT of maxmemory,
leaving the rest for them.
"""

from __future__ import annotations

import importlib.resources
from typing import Any

from redis import asyncio as aioredis

NAMES = (
    "submit",
    "start",
    "reserve",
    "book",
    "complete",
    "retry",
    "fail",
    "promote",
    "take",
    "release",
    "heartbeat",
    "escalate",
    "review",
    "reject",
    "resume",
    "timeout",
    "cancel",
    "breaker",
    "ratelimit",
    "cache_lookup",
    "undo",
    "tokens",
    "checkpoint",
)


class Scripts:
    """The registered scripts of one client, by name."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._scripts = {name: client.register_script(source(name)) for name in NAMES}

    async def call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self._scripts[name](keys=keys, args=args)


# Scripts that admit new work, and so must be refused when Redis is full.
ADMITTING = frozenset({"submit"})


def source(name: str) -> str:
    """The script as Redis runs it: its flags, the shared constants (lua/_wire.lua), the
    shared functions (lua/_common.lua, lua/_admission.lua, lua/_ending.lua), then the
    script itself."""
    lua = importlib.resources.files("trimtab.queue") / "lua"
    parts = ("_wire", "_common", "_admission", "_ending", name)
    flags = "" if name in ADMITTING else "#!lua flags=allow-oom\n"
    return flags + "".join((lua / f"{part}.lua").read_text() for part in parts)
