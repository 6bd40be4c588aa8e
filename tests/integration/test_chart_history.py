"""The chart's history options, rendered by the real (pinned) helm: an external
database (URL, password Secret, CA) passed to the operator and the API server, or the
bundled single-node PostgreSQL for trials, and nothing of either by default."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.harness import chart


@pytest.fixture(scope="module")
def helm() -> str:
    return chart.helm_binary()


def _env(found: list[dict[str, Any]], deployment: str) -> dict[str, dict[str, Any]]:
    pod = chart.find(found, "Deployment", deployment)["spec"]["template"]["spec"]
    return {e["name"]: e for e in pod["containers"][0]["env"]}


def test_by_default_there_is_no_history(helm: str) -> None:
    found = chart.objects(helm, "api.enabled=true")
    assert "TRIMTAB_HISTORY_URL" not in _env(found, "trimtab")
    assert "TRIMTAB_HISTORY_URL" not in _env(found, "trimtab-api")
    assert not [o for o in found if o["metadata"]["name"] == "trimtab-history"]


def test_an_external_database_reaches_the_operator_and_the_api(helm: str) -> None:
    url = "postgresql://trimtab@pg.db:5432/trimtab?sslmode=verify-full"
    found = chart.objects(
        helm, f"history.url={url}", "history.passwordSecret.name=pg", "history.caSecret=pg-ca",
        "api.enabled=true",
    )  # fmt: skip
    for deployment in ("trimtab", "trimtab-api"):
        env = _env(found, deployment)
        assert env["TRIMTAB_HISTORY_URL"]["value"] == url
        ref = env["TRIMTAB_HISTORY_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "pg", "key": "password"}
        pod = chart.find(found, "Deployment", deployment)["spec"]["template"]["spec"]
        assert {"name": "history-ca", "secret": {"secretName": "pg-ca", "items": [
            {"key": "ca.crt", "path": "ca.crt"}]}} in pod["volumes"]  # fmt: skip


def test_the_bundled_database_is_restricted_and_its_password_generated(helm: str) -> None:
    found = chart.objects(helm, "history.bundled.enabled=true", "networkPolicy.enabled=true")
    env = _env(found, "trimtab")
    assert env["TRIMTAB_HISTORY_URL"]["value"] == (
        "postgresql://trimtab@trimtab-history.trimtab-system.svc:5432/trimtab"
    )
    ref = env["TRIMTAB_HISTORY_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "trimtab-history", "key": "password"}
    secret = chart.find(found, "Secret", "trimtab-history")
    assert len(base64.b64decode(secret["data"]["password"])) == 32
    pod = chart.find(found, "StatefulSet", "trimtab-history")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    db_env = {e["name"]: e for e in container["env"]}
    assert db_env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == ref
    policy = chart.find(found, "NetworkPolicy", "trimtab-history")
    peers = policy["spec"]["ingress"][0]["from"]
    assert len(peers) == 2, "the operator and the API server only"


def test_a_given_password_secret_replaces_the_generated_one(helm: str) -> None:
    found = chart.objects(helm, "history.bundled.enabled=true", "history.passwordSecret.name=mine")
    assert not [
        o for o in found if o["kind"] == "Secret" and o["metadata"]["name"] == "trimtab-history"
    ]
    ref = _env(found, "trimtab")["TRIMTAB_HISTORY_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == "mine"
