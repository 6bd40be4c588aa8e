"""The runtime's Redis client against a real redis-server that requires a password and
speaks only TLS: the password and CA bundle from the environment get in, and a client
without them is refused rather than silently connected."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Iterator

import pytest
import redis.exceptions

from tests.harness import redis_server
from trimtab.queue import connection

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, pathlib.Path]]:
    with redis_server.secured_redis(tmp_path_factory.mktemp("secured-redis"), PASSWORD) as found:
        yield found


async def _ping_and_roundtrip(url: str, auth: connection.Auth) -> str | None:
    client = connection.connect(url, auth=auth)
    try:
        await client.set("k", "v")
        value: str | None = await client.get("k")
        return value
    finally:
        await client.aclose()


def test_password_and_ca_from_the_environment_connect(
    secured: tuple[str, pathlib.Path],
) -> None:
    url, ca = secured
    env = {connection.PASSWORD_ENV: PASSWORD, connection.CA_FILE_ENV: str(ca)}
    assert asyncio.run(_ping_and_roundtrip(url, connection.Auth.from_env(env))) == "v"


def test_a_wrong_password_is_refused(secured: tuple[str, pathlib.Path]) -> None:
    url, ca = secured
    with pytest.raises(redis.exceptions.AuthenticationError):
        asyncio.run(_ping_and_roundtrip(url, connection.Auth(password="wrong", ca_file=str(ca))))


def test_a_server_the_ca_did_not_sign_is_refused(secured: tuple[str, pathlib.Path]) -> None:
    url, _ = secured
    # Without the CA bundle the system's CAs are used, and they never signed this server.
    with pytest.raises(redis.exceptions.ConnectionError, match="certificate verify failed"):
        asyncio.run(_ping_and_roundtrip(url, connection.Auth(password=PASSWORD)))


def test_plain_text_to_a_tls_only_server_fails(secured: tuple[str, pathlib.Path]) -> None:
    url, _ = secured
    plain = url.replace("rediss://", "redis://")
    with pytest.raises(redis.exceptions.ConnectionError):
        asyncio.run(_ping_and_roundtrip(plain, connection.Auth(password=PASSWORD)))
