"""`trimtab operator run`: flags over the environment, handed to kopf in its memo."""

from __future__ import annotations

import argparse

import pytest

from trimtab import config
from trimtab.cli import operator_cmd
from trimtab.reconcile.agentpool import redis_access


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    operator_cmd.register(parser.add_subparsers())
    return parser.parse_args(["operator", "run", *argv])


def test_flags_decide_over_the_environment_and_nothing_is_written_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRIMTAB_STATUS_INTERVAL_SECONDS", "3")
    monkeypatch.setenv("TRIMTAB_METRICS_PORT", "9999")
    args = _args("-n", "team-a", "--redis-url", "redis://r:1/0", "--metrics-port", "0")
    cfg = operator_cmd._config(args)
    assert cfg.redis_url == "redis://r:1/0"
    assert cfg.metrics_port == 0
    assert cfg.scan_cluster is False  # given its namespaces, it scans nothing
    assert cfg.status_interval_seconds == 3.0  # no flag: the Deployment's environment
    assert config.from_env().metrics_port == 9999  # the environment was left alone


def test_the_memo_carries_the_config_to_start_up() -> None:
    cfg = operator_cmd._config(_args("-A"))
    memo = operator_cmd.lifecycle_memo(cfg)
    assert memo["cfg"] is cfg
    assert cfg.scan_cluster is True
    assert operator_cmd.lifecycle_memo(cfg) is not memo  # a fresh one for every term


def test_the_admins_allow_lists_come_from_flags_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRIMTAB_ALLOWED_IMAGES", "registry.corp/agents, ghcr.io/trimtab")
    from_env = operator_cmd._config(_args())
    assert from_env.policy.images == ("registry.corp/agents", "ghcr.io/trimtab")
    assert from_env.policy.endpoints == ()
    flagged = operator_cmd._config(
        _args("--allowed-image", "x.io/a", "--allowed-endpoint", "https://llm.corp/v1")
    )
    assert flagged.policy.images == ("x.io/a",)
    assert flagged.policy.allows_endpoint("https://llm.corp/v1/chat")
    assert not flagged.policy.allows_endpoint("https://elsewhere.example/v1")
    monkeypatch.setenv("TRIMTAB_ALLOWED_TOOL_URLS", "https://crm.corp/v1")
    tools = operator_cmd._config(_args())
    assert tools.policy.allows_tool_url("https://crm.corp/v1/customers/{{ inputs.id }}")
    assert not tools.policy.allows_tool_url("https://evil.example/x")
    assert operator_cmd._config(_args("--allowed-tool-url", "https://b/")).policy.tool_urls == (
        "https://b/",
    )


def test_a_password_in_the_workers_redis_url_is_refused_and_never_logged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = operator_cmd._config(_args("--redis-url", "redis://:s3cret@redis:6379/0"))
    problem = cfg.worker_redis.problem()
    assert problem is not None
    assert "s3cret" not in problem
    assert "redis://:***@redis:6379/0" in problem
    # Workers with their own URL, the password from a Secret: fine.
    monkeypatch.setenv("TRIMTAB_WORKER_REDIS_URL", "redis://redis:6379/0")
    assert (
        operator_cmd._config(_args("--redis-url", "redis://:s3cret@redis/0")).worker_redis.problem()
        is None
    )
    assert redis_access.redacted("rediss://user:pw@h:1/0") == "rediss://user:***@h:1/0"
    assert redis_access.redacted("redis://h:1/0") == "redis://h:1/0"


def test_the_operator_command_refuses_it_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from trimtab import cli  # noqa: PLC0415

    code = cli.main(["operator", "run", "--redis-url", "redis://:s3cret@redis:6379/0"])
    err = capsys.readouterr().err
    assert code != 0
    assert len(err.strip().splitlines()) == 1
    assert "carries a password" in err
    assert "s3cret" not in err
