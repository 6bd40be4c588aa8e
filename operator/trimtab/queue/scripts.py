"""The Lua scripts behind every atomic transition, loaded once per Redis client.

redis-py's Script objects run by EVALSHA and reload on NOSCRIPT, so a restarted Redis
(which forgets its script cache) costs one extra round trip, not an error. Every script
starts with lua/_wire.lua, the states and replies generated from trimtab.queue.wire.
"""

from __future__ import annotations

import importlib.resources
from typing import Any

from redis import asyncio as aioredis

NAMES = (
    "submit",
    "start",
    "complete",
    "retry",
    "fail",
    "promote",
    "release",
    "escalate",
    "review",
    "reject",
    "resume",
    "timeout",
    "breaker",
    "cache_lookup",
)


class Scripts:
    """The registered scripts of one client, by name."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._scripts = {name: client.register_script(source(name)) for name in NAMES}

    async def call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self._scripts[name](keys=keys, args=args)


def source(name: str) -> str:
    """The script as Redis runs it: the shared constants (lua/_wire.lua), the shared
    functions (lua/_common.lua), then the script itself."""
    lua = importlib.resources.files("trimtab.queue") / "lua"
    parts = ("_wire", "_common", name)
    return "".join((lua / f"{part}.lua").read_text() for part in parts)
