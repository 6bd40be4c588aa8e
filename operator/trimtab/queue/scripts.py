"""The Lua scripts behind every atomic transition, loaded once per Redis client.

redis-py's Script objects run by EVALSHA and reload on NOSCRIPT, so a restarted Redis
(which forgets its script cache) costs one extra round trip, not an error. Every script
starts with lua/_wire.lua, the states and replies generated from trimtab.queue.wire.

A full Redis (`noeviction` at `maxmemory`) refuses scripts that write, which would stop
running work along with new work. So every script but `submit` is flagged `allow-oom`:
steps already under way can always start, finish, retry or fail, while submit.lua
itself refuses new runs once memory passes wire.ADMIT_BELOW_PERCENT of maxmemory,
leaving the rest for them.

A client whose URL asks for durability (`?wait_replicas=N`, trimtab.queue.topology)
sends each script with a `WAIT N` behind it, on one connection in one round trip, and
a script whose writes did not reach N replicas in time raises NotReplicatedError, a
ConnectionError, which callers already treat as Redis being away for a moment.
"""

from __future__ import annotations

import importlib.resources
from typing import Any

from redis import asyncio as aioredis
from redis import exceptions as redis_exceptions
from redis.asyncio import cluster as aiocluster

from trimtab.queue import topology

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


class NotReplicatedError(redis_exceptions.ConnectionError):
    """A script ran on the primary, but fewer replicas than required have its writes:
    a failover now could lose them. Retrying is safe; every script is idempotent for
    a repeated call (a duplicate completion is dropped, a submit keeps its key)."""


class Scripts:
    """The registered scripts of one client, by name."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._scripts = {name: client.register_script(source(name)) for name in NAMES}
        self._durability: topology.Durability = getattr(client, "durability", topology.Durability())

    async def call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        if not self._durability.replicas:
            return await self._scripts[name](keys=keys, args=args)
        return await self._replicated(name, keys, args)

    async def _replicated(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """The script, then WAIT on the same connection: WAIT counts the replicas that
        have this connection's writes, so it must follow them on it."""
        script, want = self._scripts[name], self._durability
        where = await self._node_of(keys)
        for _ in range(2):  # a second time after loading it, on NOSCRIPT
            async with self._client.pipeline(transaction=False) as pipe:
                # As a plain command: a cluster pipeline refuses its evalsha() method,
                # and routes EVALSHA by its keys all the same.
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
                pipe.execute_command("WAIT", want.replicas, want.timeout_ms, **where)
                result, acked = await pipe.execute(raise_on_error=False)
            if isinstance(result, redis_exceptions.NoScriptError):
                await self._client.script_load(script.script)
                continue
            if isinstance(result, Exception):
                raise result
            if isinstance(acked, Exception):  # e.g. the node is a replica now
                await self._forget_slots()
                raise NotReplicatedError(f"{name}: WAIT failed ({acked}); retry") from acked
            if int(acked) < want.replicas:
                raise NotReplicatedError(
                    f"{name}: {acked} of {want.replicas} replica(s) acknowledged its writes"
                    f" within {want.timeout_ms} ms"
                )
            return result
        raise redis_exceptions.NoScriptError(f"{name}: not loaded after SCRIPT LOAD")

    async def _forget_slots(self) -> None:
        """On Redis Cluster, learn the slots again: the node WAIT went to no longer
        serves the script's slot (a failover moved it)."""
        client: Any = self._client
        if isinstance(client, aiocluster.RedisCluster):
            await client.nodes_manager.initialize()

    async def _node_of(self, keys: list[str]) -> dict[str, Any]:
        """On Redis Cluster, WAIT goes to the node of the script's keys: a cluster
        pipeline sends one node's commands on one connection, in order, so WAIT
        follows the script there. Nothing for a plain client."""
        client: Any = self._client
        if not isinstance(client, aiocluster.RedisCluster):
            return {}
        await client.initialize()  # learns the slots once; a no-op after
        return {"target_nodes": client.get_node_from_key(keys[0])}


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
