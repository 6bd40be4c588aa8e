"""The chart's Redis options: an external Redis with a password Secret and TLS, or the
bundled single-node Redis of values-dev.yaml, rendered by the real (pinned) helm."""

from __future__ import annotations

import pathlib
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.harness import chart, redis_server
from trimtab.queue import keys


@pytest.fixture(scope="module")
def helm() -> str:
    return chart.helm_binary()


def _operator_env(
    found: list[dict[str, Any]], deployment: str = "trimtab"
) -> dict[str, dict[str, Any]]:
    container = chart.find(found, "Deployment", deployment)["spec"]["template"]["spec"]
    return {e["name"]: e for e in container["containers"][0]["env"]}


def test_defaults_render_no_redis_and_no_secret_reference(helm: str) -> None:
    found = chart.objects(helm)
    assert not [o for o in found if o["kind"] == "StatefulSet"]
    env = _operator_env(found)
    assert env["TRIMTAB_REDIS_URL"]["value"] == "redis://redis.trimtab-system.svc:6379/0"
    assert "TRIMTAB_REDIS_PASSWORD" not in env


def test_external_redis_with_password_and_tls(helm: str) -> None:
    found = chart.objects(
        helm,
        "redis.url=rediss://redis.example.com:6380/0",
        "redis.auth.existingSecret=redis-auth",
        "redis.auth.secretKey=pw",
        "redis.auth.workerSecret=redis-auth-workers",
        "redis.tls.caSecret=redis-ca",
    )
    env = _operator_env(found)
    assert env["TRIMTAB_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "redis-auth",
        "key": "pw",
    }
    assert env["TRIMTAB_WORKER_REDIS_PASSWORD_SECRET"]["value"] == "redis-auth-workers"
    assert env["TRIMTAB_WORKER_REDIS_PASSWORD_KEY"]["value"] == "pw"
    # Workers get the CA Secret's name; without workerCaSecret, the operator's.
    assert env["TRIMTAB_WORKER_REDIS_CA_SECRET"]["value"] == "redis-ca"
    pod = chart.find(found, "Deployment", "trimtab")["spec"]["template"]["spec"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "redis-ca")
    assert env["TRIMTAB_REDIS_CA_FILE"]["value"] == mount["mountPath"] + "/ca.crt"
    volume = next(v for v in pod["volumes"] if v["name"] == "redis-ca")
    assert volume["secret"]["secretName"] == "redis-ca"
    chart.assert_restricted(pod)
    # The API server reaches the same Redis the same way.
    api = _operator_env(found, "trimtab-api")
    for name in ("TRIMTAB_REDIS_URL", "TRIMTAB_REDIS_PASSWORD", "TRIMTAB_REDIS_CA_FILE"):
        assert api[name] == env[name]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        pytest.param(("redis.tls.caSecret=ca",), "not rediss://", id="ca-without-tls"),
        pytest.param(
            ("redis.bundled.enabled=true", "redis.tls.caSecret=ca"),
            "external Redis",
            id="tls-with-bundled",
        ),
        pytest.param(("redis.url=",), "redis.url is required", id="no-redis-at-all"),
        pytest.param(("redis.bundled.appendfsync=sometimes",), "appendfsync", id="bad-fsync"),
        pytest.param(
            ("redis.auth.namespaceUsers={team-a}",), "trimtab redis grant", id="users-external"
        ),
    ],
)
def test_contradictory_redis_settings_fail_with_the_reason(
    helm: str, sets: tuple[str, ...], message: str
) -> None:
    done = chart.template(helm, *sets)
    assert done.returncode != 0
    assert message in done.stderr


def test_dev_values_bundle_a_persistent_redis(helm: str) -> None:
    found = chart.objects(helm, "redis.auth.existingSecret=redis-auth", files=(chart.DEV_VALUES,))
    redis = chart.find(found, "StatefulSet", "trimtab-redis")
    service = chart.find(found, "Service", "trimtab-redis")
    env = _operator_env(found)
    assert env["TRIMTAB_REDIS_URL"]["value"] == "redis://trimtab-redis.trimtab-system.svc:6379/0"
    assert redis["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["selector"] == redis["spec"]["selector"]["matchLabels"]
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    options = dict(zip(args[::2], args[1::2], strict=True))
    assert options["--appendonly"] == "yes"
    assert options["--maxmemory-policy"] == "noeviction"
    assert options["--maxmemory"] == "768mb"  # three quarters of the 1Gi limit
    assert options["--requirepass"] == "$(REDIS_PASSWORD)"
    [claim] = redis["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    mounts = redis["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": claim["metadata"]["name"], "mountPath": options["--dir"]} in mounts
    for pod in chart.pod_specs(found):
        chart.assert_restricted(pod)


def test_dev_values_lint_clean(helm: str) -> None:
    argv = [helm, "lint", "--strict", str(chart.CHART), "-f", str(chart.DEV_VALUES)]
    done = subprocess.run(argv, check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        pytest.param(("redis.bundled.resources.limits.memory=512Mi",), "384mb", id="mebibytes"),
        pytest.param(("redis.bundled.maxmemory=100mb",), "100mb", id="given"),
    ],
)
def test_the_bundled_redis_maxmemory_follows_its_memory_limit(
    helm: str, sets: tuple[str, ...], expected: str
) -> None:
    found = chart.objects(helm, *sets, files=(chart.DEV_VALUES,))
    args = chart.find(found, "StatefulSet", "trimtab-redis")["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    assert dict(zip(args[::2], args[1::2], strict=True))["--maxmemory"] == expected


def test_a_memory_limit_in_other_units_asks_for_maxmemory(helm: str) -> None:
    done = chart.template(
        helm, "redis.bundled.resources.limits.memory=1G", files=(chart.DEV_VALUES,)
    )
    assert done.returncode != 0
    assert "must be given in Mi or Gi, or set redis.bundled.maxmemory" in done.stderr


def _rendered_redis_env(found: list[dict[str, Any]], namespace: str) -> dict[str, str]:
    """The bundled Redis container's variables, read from the rendered Secrets."""
    container = chart.find(found, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    env = {}
    for entry in container["env"]:
        ref = entry["valueFrom"]["secretKeyRef"]
        env[entry["name"]] = chart.secret_value(found, namespace, ref["name"], ref["key"])
    return env


@pytest.fixture
def bundled_with_users(
    helm: str, tmp_path: pathlib.Path
) -> Iterator[tuple[list[dict[str, Any]], str]]:
    """The bundled Redis's rendered command line for two watched namespaces, run as a
    local redis-server with the rendered Secrets' passwords; yields what rendered and
    the server's URL (no credentials)."""
    found = chart.objects(helm, "watchNamespaces={team-a,team-b}", files=(chart.DEV_VALUES,))
    container = chart.find(found, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    env = _rendered_redis_env(found, "trimtab-system")
    args = [chart.expand(a, env) for a in container["args"]]
    port = redis_server.free_port()
    args[args.index("--port") + 1] = str(port)
    args[args.index("--dir") + 1] = str(tmp_path)
    proc = subprocess.Popen([*container["command"], *args, "--bind", "127.0.0.1"])
    url = f"redis://127.0.0.1:{port}/0"
    try:
        redis_server.wait_ping(url, proc, password=env["REDIS_PASSWORD"])
        yield found, url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _client(found: list[dict[str, Any]], url: str, namespace: str) -> redis.Redis:
    """A client as namespace's workers log in, from the Secret the chart put there."""
    secret = "trimtab-redis-user"
    return redis.Redis.from_url(
        url,
        username=chart.secret_value(found, namespace, secret, "username"),
        password=chart.secret_value(found, namespace, secret, "password"),
    )


def test_the_bundled_redis_asks_for_a_password_it_generated(
    bundled_with_users: tuple[list[dict[str, Any]], str],
) -> None:
    found, url = bundled_with_users
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(url).ping()
    env = _operator_env(found)
    ref = env["TRIMTAB_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
    password = chart.secret_value(found, "trimtab-system", ref["name"], ref["key"])
    assert len(password) == 32
    assert redis.Redis.from_url(url, password=password).set(keys.run("team-a", "k"), "v")
    args = chart.find(found, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--protected-mode" not in args


def test_each_namespace_gets_a_user_confined_to_its_keys(
    bundled_with_users: tuple[list[dict[str, Any]], str],
) -> None:
    found, url = bundled_with_users
    # Workers read their user from the Secret in their own namespace.
    env = _operator_env(found)
    assert env["TRIMTAB_WORKER_REDIS_PASSWORD_SECRET"]["value"] == "trimtab-redis-user"
    team_a, team_b = _client(found, url, "team-a"), _client(found, url, "team-b")
    assert team_a.set(keys.run("team-a", "r1"), "a")
    assert team_b.set(keys.run("team-b", "r1"), "b")
    with pytest.raises(redis.exceptions.NoPermissionError):
        team_a.get(keys.run("team-b", "r1"))
    with pytest.raises(redis.exceptions.NoPermissionError):
        team_b.flushall()
    assert team_b.get(keys.run("team-b", "r1")) == b"b"
    # Each user's password is its own: team-a's does not open team-b's user.
    a_password = chart.secret_value(found, "team-a", "trimtab-redis-user", "password")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(url, username="tt-team-b", password=a_password).ping()


def test_namespace_users_may_cover_more_than_the_watched_namespaces(helm: str) -> None:
    found = chart.objects(
        helm,
        "watchNamespaces={team-a}",
        "redis.auth.namespaceUsers={team-a,team-c}",
        files=(chart.DEV_VALUES,),
    )
    users = [
        o["metadata"]["namespace"] for o in found if o["metadata"]["name"] == "trimtab-redis-user"
    ]
    assert users == ["team-a", "team-c"]
    args = chart.find(found, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [args[i + 1] for i, a in enumerate(args) if a == "--user"] == ["tt-team-a", "tt-team-c"]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        pytest.param(
            ("redis.auth.namespaceUsers={team-a}",), "needs watchNamespaces", id="cluster-wide"
        ),
        pytest.param(
            ("watchNamespaces={team-a,team-b}", "redis.auth.namespaceUsers={team-a}"),
            "team-b is missing",
            id="a-watched-namespace-left-out",
        ),
    ],
)
def test_namespace_users_must_cover_every_watched_namespace(
    helm: str, sets: tuple[str, ...], message: str
) -> None:
    done = chart.template(helm, *sets, files=(chart.DEV_VALUES,))
    assert done.returncode != 0
    assert message in done.stderr
