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
    "cache_lookup",
)

# Scripts acting on one step attempt; they get lua/_stale.lua's ack_if_stale first.
ATTEMPT_SCRIPTS = frozenset({"start", "complete", "retry", "fail", "escalate", "review"})


class Scripts:
    """The registered scripts of one client, by name."""

    def __init__(self, client: aioredis.Redis) -> None:
        lua = importlib.resources.files("trimtab.queue") / "lua"
        prelude = (lua / "_stale.lua").read_text()
        self._scripts = {
            name: client.register_script(
                (prelude if name in ATTEMPT_SCRIPTS else "") + (lua / f"{name}.lua").read_text()
            )
            for name in NAMES
        }

    async def call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self._scripts[name](keys=keys, args=args)
