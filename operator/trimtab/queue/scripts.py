"""The Lua scripts behind every atomic transition, loaded once per Redis client.

redis-py's Script objects run by EVALSHA and reload on NOSCRIPT, so a restarted Redis
(which forgets its script cache) costs one extra round trip, not an error.
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
    "breaker",
)


class Scripts:
    """The registered scripts of one client, by name."""

    def __init__(self, client: aioredis.Redis) -> None:
        lua = importlib.resources.files("trimtab.queue") / "lua"
        self._scripts = {
            name: client.register_script((lua / f"{name}.lua").read_text()) for name in NAMES
        }

    async def call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self._scripts[name](keys=keys, args=args)
