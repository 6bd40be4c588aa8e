"""Redis authentication and TLS: the worker pod's references to the password and CA
Secrets, and the client options the queue builds from them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_agentpool_desired import pod, pool_spec, worker
from trimtab import config
from trimtab.queue import connection, topology
from trimtab.reconcile.agentpool import desired, redis_access

NS, NAME, UID = "team-a", "support", "0b6f5c1e-0000-4000-8000-000000000001"
TLS_URL = "rediss://redis.example.com:6380/0"


def _deployment(access: redis_access.RedisAccess) -> dict[str, Any]:
    wiring = desired.Wiring(image="img", redis=access)
    return desired.build_deployment(
        NS, NAME, UID, pool_spec(), wiring=wiring, fallback_active=False
    )


def test_the_pure_layer_names_the_clients_variables() -> None:
    assert redis_access.PASSWORD_ENV == connection.PASSWORD_ENV
    assert redis_access.USERNAME_ENV == connection.USERNAME_ENV
    assert redis_access.CA_FILE_ENV == connection.CA_FILE_ENV
    assert redis_access.SENTINEL_PASSWORD_ENV == topology.SENTINEL_PASSWORD_ENV


def test_plain_access_adds_nothing_to_the_pod() -> None:
    dep = _deployment(redis_access.RedisAccess(url="redis://r:6379/0"))
    names = [e["name"] for e in worker(dep)["env"]]
    assert connection.PASSWORD_ENV not in names
    assert [v["name"] for v in pod(dep)["volumes"]] == ["tmp"]


def test_password_and_ca_are_secret_references_in_the_pools_namespace() -> None:
    access = redis_access.RedisAccess(
        url=TLS_URL, password_secret="redis-auth", password_key="pw", ca_secret="redis-ca"
    )
    dep = _deployment(access)
    env = {e["name"]: e for e in worker(dep)["env"]}
    ref = env[connection.PASSWORD_ENV]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "redis-auth", "key": "pw"}
    # The user comes from the same Secret when it names one (a namespace user).
    user = env[connection.USERNAME_ENV]["valueFrom"]["secretKeyRef"]
    assert user == {"name": "redis-auth", "key": "username", "optional": True}
    sentinel = env[topology.SENTINEL_PASSWORD_ENV]["valueFrom"]["secretKeyRef"]
    assert sentinel == {"name": "redis-auth", "key": "sentinel-password", "optional": True}
    ca_file = env[connection.CA_FILE_ENV]["value"]
    mounts = {m["name"]: m for m in worker(dep)["volumeMounts"]}
    assert ca_file.startswith(mounts[redis_access.CA_VOLUME]["mountPath"] + "/")
    assert mounts[redis_access.CA_VOLUME]["readOnly"] is True
    volumes = {v["name"]: v for v in pod(dep)["volumes"]}
    assert volumes[redis_access.CA_VOLUME]["secret"]["secretName"] == "redis-ca"
    assert worker(dep)["args"][worker(dep)["args"].index("--redis-url") + 1] == TLS_URL


def test_operator_config_reads_the_worker_secrets() -> None:
    cfg = config.from_env(
        {
            "TRIMTAB_REDIS_URL": "redis://op:6379/0",
            "TRIMTAB_WORKER_REDIS_URL": TLS_URL,
            "TRIMTAB_WORKER_REDIS_PASSWORD_SECRET": "redis-auth",
            "TRIMTAB_WORKER_REDIS_CA_SECRET": "redis-ca",
        }
    )
    assert cfg.worker_redis == redis_access.RedisAccess(
        url=TLS_URL, password_secret="redis-auth", password_key="password", ca_secret="redis-ca"
    )
    assert config.from_env({}).worker_redis == redis_access.RedisAccess(
        url=config.DEFAULT_REDIS_URL
    )


@pytest.mark.parametrize(
    ("auth", "url", "options"),
    [
        pytest.param(connection.Auth(), "redis://r/0", {}, id="none"),
        pytest.param(connection.Auth(password="s"), "redis://r/0", {"password": "s"}, id="pw"),
        pytest.param(
            connection.Auth(password="s", username="tt-a"),
            "redis://r/0",
            {"password": "s", "username": "tt-a"},
            id="user",
        ),
        pytest.param(
            connection.Auth(ca_file="/ca.crt"),
            TLS_URL,
            {"ssl_cert_reqs": "required", "ssl_ca_certs": "/ca.crt"},
            id="tls-ca",
        ),
        pytest.param(connection.Auth(), TLS_URL, {"ssl_cert_reqs": "required"}, id="tls-system"),
    ],
)
def test_client_options(auth: connection.Auth, url: str, options: dict[str, Any]) -> None:
    assert auth.pool_options(url) == options


def test_a_ca_bundle_without_tls_is_refused_not_ignored() -> None:
    with pytest.raises(ValueError, match="rediss://"):
        connection.Auth(ca_file="/ca.crt").pool_options("redis://r:6379/0")


def test_auth_comes_from_the_environment() -> None:
    env = {
        connection.PASSWORD_ENV: "s3cret",
        connection.CA_FILE_ENV: "/etc/ca.crt",
        connection.USERNAME_ENV: "tt-team-a",
    }
    assert connection.Auth.from_env(env) == connection.Auth(
        password="s3cret", ca_file="/etc/ca.crt", username="tt-team-a"
    )
    assert connection.Auth.from_env({connection.PASSWORD_ENV: ""}) == connection.Auth()
