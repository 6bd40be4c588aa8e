"""What an AgentPool author may ask for: every emitted container meets the restricted
Pod Security profile, and the admin's allow-lists of images and endpoints hold."""

from __future__ import annotations

from typing import Any

import pytest

from trimtab.api.v1alpha1 import agentpool
from trimtab.reconcile.agentpool import admission
from trimtab.reconcile.policy import Policy

DEFAULT_IMAGE = "ghcr.io/trimtab/trimtab:1"


def _spec(**worker: Any) -> agentpool.AgentPoolSpec:
    return agentpool.AgentPoolSpec.model_validate(
        {"model": {"endpoint": "https://llm.corp/v1", "name": "m"}, "worker": worker}
    )


def _found(spec: agentpool.AgentPoolSpec, policy: Policy | None = None) -> list[str]:
    return [
        str(p) for p in admission.problems(spec, policy or Policy(), default_image=DEFAULT_IMAGE)
    ]


@pytest.mark.parametrize(
    ("context", "ports", "reason"),
    [
        pytest.param({"privileged": True}, [], "privileged", id="privileged"),
        pytest.param({"allowPrivilegeEscalation": True}, [], "escalation", id="escalation"),
        pytest.param({"capabilities": {"add": ["SYS_ADMIN"]}}, [], "SYS_ADMIN", id="cap-add"),
        pytest.param({"runAsUser": 0}, [], "root", id="root-uid"),
        pytest.param({"runAsNonRoot": False}, [], "root", id="root-allowed"),
        pytest.param({"seccompProfile": {"type": "Unconfined"}}, [], "seccomp", id="seccomp"),
        pytest.param({"procMount": "Unmasked"}, [], "/proc", id="proc"),
        pytest.param({"seLinuxOptions": {"type": "spc_t"}}, [], "SELinux", id="selinux"),
        pytest.param({"appArmorProfile": {"type": "Unconfined"}}, [], "AppArmor", id="apparmor"),
        pytest.param({}, [{"containerPort": 80, "hostPort": 80}], "host ports", id="host-port"),
    ],
)
def test_an_extra_container_outside_the_profile_is_refused_and_never_emitted_as_asked(
    context: dict[str, Any], ports: list[dict[str, Any]], reason: str
) -> None:
    container = {"name": "side", "image": "side:1", "securityContext": context, "ports": ports}
    found = _found(_spec(extraContainers=[container]))
    assert len(found) == 1
    assert found[0].startswith("spec.worker.extraContainers[0].")
    assert reason in found[0]
    emitted = admission.restricted(container)
    ctx = emitted["securityContext"]
    assert "privileged" not in ctx
    assert "procMount" not in ctx
    assert "seLinuxOptions" not in ctx
    assert ctx.get("appArmorProfile", {}).get("type") != "Unconfined"
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["runAsNonRoot"] is True
    assert ctx.get("runAsUser") != 0
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert all("hostPort" not in p for p in emitted.get("ports") or [])


def test_what_the_profile_leaves_open_stays_as_the_author_set_it() -> None:
    container = {
        "name": "side",
        "image": "side:1",
        "securityContext": {
            "readOnlyRootFilesystem": True,
            "runAsUser": 1000,
            "capabilities": {"add": ["NET_BIND_SERVICE"]},
        },
    }
    assert _found(_spec(extraContainers=[container])) == []
    ctx = admission.restricted(container)["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["runAsUser"] == 1000
    assert ctx["capabilities"] == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    assert container["securityContext"]["capabilities"] == {"add": ["NET_BIND_SERVICE"]}


def test_the_admins_allow_lists_hold_for_images_and_endpoints() -> None:
    policy = Policy(images=("registry.corp",), endpoints=("https://llm.corp/v1",))
    assert _found(_spec(image="registry.corp/agents:2"), policy) == []
    assert _found(_spec(), policy) == []  # the operator's own image is always allowed
    assert _found(_spec(image="evil.example/miner:1"), policy) == [
        "spec.worker.image: image evil.example/miner:1 is not allowed here"
    ]
    side = {"name": "side", "image": "docker.io/side:1"}
    assert _found(_spec(extraContainers=[side]), policy) == [
        "spec.worker.extraContainers[0].image: image docker.io/side:1 is not allowed here"
    ]
    elsewhere = agentpool.AgentPoolSpec.model_validate(
        {"model": {"endpoint": "https://attacker.example/v1", "name": "m"}}
    )
    assert _found(elsewhere, policy) == [
        "spec.model.endpoint: endpoint https://attacker.example/v1 is not allowed here"
    ]
    assert _found(elsewhere) == []  # no policy: the admin allowed anything


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://llm.corp/v1", True),
        ("https://llm.corp/v1/", True),
        ("https://LLM.corp/v1/chat", True),
        ("https://llm.corp/v2", False),
        ("https://llm.corp/v10", False),
        ("http://llm.corp/v1", False),
        ("https://llm.corp:8443/v1", False),
        ("https://llm.corp.attacker.example/v1", False),
        ("https://llm.corp@attacker.example/v1", False),
        ("https://user:pw@llm.corp/v1", False),
    ],
)
def test_an_endpoint_is_allowed_by_scheme_host_port_and_path(url: str, allowed: bool) -> None:
    assert Policy(endpoints=("https://llm.corp/v1",)).allows_endpoint(url) is allowed


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        ("registry.corp/agents", True),
        ("registry.corp/agents:2", True),
        ("registry.corp/agents@sha256:ab", True),
        ("registry.corp/agents/tool:1", True),
        ("registry.corp/agentsx:1", False),
        ("registry.corp.evil/agents:1", False),
        ("docker.io/registry.corp/agents:1", False),
    ],
)
def test_an_image_is_allowed_by_whole_path_segments(image: str, allowed: bool) -> None:
    assert Policy(images=("registry.corp/agents",)).allows_image(image) is allowed
