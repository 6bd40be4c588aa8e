"""Conversation state by session id: one round trip to read, one to write, with a TTL.

States above a size threshold are zlib-compressed; a one-byte header says which, so the
threshold can change without breaking what is stored. Values are JSON documents.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from redis import asyncio as aioredis

from trimtab.queue import keys

DEFAULT_TTL_SECONDS = 86400
COMPRESS_ABOVE_BYTES = 1024
_PLAIN, _ZLIB = b"j", b"z"


def encode(value: Any, *, compress_above: int = COMPRESS_ABOVE_BYTES) -> bytes:
    raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    if len(raw) > compress_above:
        return _ZLIB + zlib.compress(raw, level=1)  # level 1: most of the gain, little CPU
    return _PLAIN + raw


def decode(blob: bytes) -> Any:
    header, body = blob[:1], blob[1:]
    if header == _ZLIB:
        body = zlib.decompress(body)
    elif header != _PLAIN:
        raise ValueError(f"unknown state encoding {header!r}")
    return json.loads(body)


class StateStore:
    """Session state of one namespace, on a binary Redis client."""

    def __init__(
        self,
        client: aioredis.Redis,
        namespace: str,
        *,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        compress_above: int = COMPRESS_ABOVE_BYTES,
    ) -> None:
        self.client, self.namespace = client, namespace
        self.ttl_seconds, self.compress_above = ttl_seconds, compress_above

    async def get(self, session: str) -> Any | None:
        blob: Any = await self.client.get(keys.state(self.namespace, session))
        return None if blob is None else decode(bytes(blob))

    async def save(self, session: str, value: Any) -> None:
        """Store `value` and (re)start its TTL, in one SET ... EX."""
        await self.client.set(
            keys.state(self.namespace, session),
            encode(value, compress_above=self.compress_above),
            ex=self.ttl_seconds,
        )
