"""The Helm chart, rendered by the real (pinned) helm: strict values, least-privilege
RBAC in both install modes, restricted pods, and CRDs that follow crds.enabled/keep."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from tests.harness import chart
from trimtab.api.v1alpha1 import kinds

ROOT, CHART = chart.ROOT, chart.CHART


@pytest.fixture(scope="module")
def helm() -> str:
    return chart.helm_binary()


def _template(helm: str, *sets: str) -> subprocess.CompletedProcess[str]:
    return chart.template(helm, *sets)


def _objects(helm: str, *sets: str) -> list[dict[str, Any]]:
    return chart.objects(helm, *sets)


def _kinds(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(o["kind"] for o in objects)


def test_lint_is_clean(helm: str) -> None:
    argv = [helm, "lint", "--strict", str(CHART)]
    done = subprocess.run(argv, check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("imagee.tag=v1", "imagee"),
        ("image.tagg=v1", "tagg"),
        ("replicas=two", "replicas"),
        ("logFormat=xml", "logFormat"),
    ],
    ids=["unknown-top-level", "unknown-nested", "wrong-type", "not-in-enum"],
)
def test_a_mistyped_value_fails_rendering(helm: str, value: str, message: str) -> None:
    done = _template(helm, value)
    assert done.returncode != 0
    assert message in done.stderr


def test_defaults_render_the_cluster_wide_operator(helm: str) -> None:
    objects = _objects(helm)
    assert _kinds(objects) == [
        *["ClusterRole"] * 5,  # the operator's, the API server's, viewer, submitter, reviewer
        *["ClusterRoleBinding"] * 3,  # the operator's, the API server's, its auth-delegator
        *["CustomResourceDefinition"] * len(kinds.KINDS),
        "Deployment",
        "Deployment",
        "Service",
        "Service",
        "ServiceAccount",
        "ServiceAccount",
    ]
    deployment = chart.find(objects, "Deployment", "trimtab")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--all-namespaces" in args
    assert "--standalone" in args


def test_the_operator_and_api_pods_meet_the_restricted_profile(helm: str) -> None:
    deployments = [o for o in _objects(helm) if o["kind"] == "Deployment"]
    assert len(deployments) == 2
    for deployment in deployments:
        chart.assert_restricted(deployment["spec"]["template"]["spec"])


def _rules(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for o in objects if o["kind"] in ("ClusterRole", "Role") for r in o["rules"]]


@pytest.mark.parametrize("sets", [(), ("watchNamespaces={a,b}",), ("replicas=2",)])
def test_rbac_grants_no_wildcard_and_no_secrets(helm: str, sets: tuple[str, ...]) -> None:
    rules = _rules(_objects(helm, *sets))
    assert rules
    for rule in rules:
        assert "*" not in rule["verbs"]
        assert "*" not in rule["resources"]
        assert "*" not in rule["apiGroups"]
        assert "secrets" not in rule["resources"]


def test_namespaced_install_uses_roles_only(helm: str) -> None:
    objects = _objects(helm, "watchNamespaces={team-a,team-b}")
    assert not [o for o in objects if o["kind"] == "ClusterRole"]
    # One cluster-scoped binding: the API server's, to token and access reviews only.
    [binding] = [o for o in objects if o["kind"] == "ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == "system:auth-delegator"
    assert binding["subjects"][0]["name"] == "trimtab-api"
    roles = sorted(
        (o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects if o["kind"] == "Role"
    )
    names = ["trimtab", "trimtab-api", "trimtab-reviewer", "trimtab-submitter", "trimtab-viewer"]
    assert roles == [(ns, n) for ns in ("team-a", "team-b") for n in names]
    bindings = [o for o in objects if o["kind"] == "RoleBinding"]
    assert {b["subjects"][0]["namespace"] for b in bindings} == {"trimtab-system"}
    deployment = chart.find(objects, "Deployment", "trimtab")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args
    assert "--namespace=team-b" in args
    assert "--all-namespaces" not in args


def test_standby_replicas_elect_a_leader_through_one_lease(helm: str) -> None:
    objects = _objects(helm, "replicas=2")
    deployment = chart.find(objects, "Deployment", "trimtab")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--leader-elect" in args
    assert "--leader-election-name=trimtab" in args
    roles = [o for o in objects if o["kind"] == "Role"]
    assert [r["metadata"]["namespace"] for r in roles] == ["trimtab-system"]
    rules = roles[0]["rules"]
    assert all(r["resources"] == ["leases"] for r in rules)
    named = next(r for r in rules if "resourceNames" in r)
    assert named["resourceNames"] == ["trimtab"]
    single = chart.find(_objects(helm), "Deployment", "trimtab")
    assert "--leader-elect" not in single["spec"]["template"]["spec"]["containers"][0]["args"]


@pytest.mark.parametrize(
    ("sets", "crds", "kept"),
    [
        ((), len(kinds.KINDS), True),
        (("crds.keep=false",), len(kinds.KINDS), False),
        (("crds.enabled=false",), 0, False),
    ],
    ids=["default", "not-kept", "disabled"],
)
def test_crds_follow_enabled_and_keep(
    helm: str, sets: tuple[str, ...], crds: int, kept: bool
) -> None:
    found = [o for o in _objects(helm, *sets) if o["kind"] == "CustomResourceDefinition"]
    assert len(found) == crds
    for crd in found:
        annotations = crd["metadata"].get("annotations") or {}
        assert (annotations.get("helm.sh/resource-policy") == "keep") is kept


def test_chart_crds_are_the_generated_ones(helm: str) -> None:
    rendered = {
        o["metadata"]["name"]: o
        for o in _objects(helm, "crds.keep=false")
        if o["kind"] == "CustomResourceDefinition"
    }
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        source = yaml.safe_load(path.read_text())
        assert rendered[source["metadata"]["name"]] == source


def _keys(values: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted keys of values.yaml; an empty or pass-through map is one key."""
    out = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        nested = isinstance(value, dict) and value and not path.endswith(("resources", "labels"))
        out |= _keys(value, f"{path}.") if nested else {path}
    return out


def test_every_value_is_documented_in_the_generated_readme() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    documented = {line.split("`")[1] for line in readme.splitlines() if line.startswith("| `")}
    assert _keys(values) == documented


def test_the_kustomize_base_renders_what_the_chart_renders_by_default(helm: str) -> None:
    from trimtab_dev.devcluster import binaries  # noqa: PLC0415 - builds kubectl on first use

    kubectl = str(binaries.ensure_built() / "kubectl")
    built = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "manifests" / "install")],
        check=True,
        capture_output=True,
        text=True,
    )
    base = [d for d in yaml.safe_load_all(built.stdout) if d]
    rendered = _objects(helm)

    def key(o: dict[str, Any]) -> tuple[str, str, str]:
        return (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])

    namespaces = [o for o in base if o["kind"] == "Namespace"]
    assert [o["metadata"]["name"] for o in namespaces] == ["trimtab-system"]
    rest = sorted((o for o in base if o["kind"] != "Namespace"), key=key)
    assert rest == sorted(rendered, key=key)


def test_the_admins_allow_lists_reach_the_operator(helm: str) -> None:
    def env_of(*sets: str) -> dict[str, str]:
        deployment = chart.find(_objects(helm, *sets), "Deployment", "trimtab")
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value", "") for e in container.get("env") or []}

    assert "TRIMTAB_ALLOWED_IMAGES" not in env_of()  # empty lists: anything goes
    env = env_of(
        "security.allowedImages={registry.corp/agents,ghcr.io/trimtab}",
        "security.allowedEndpoints={https://llm.corp/v1}",
        "security.allowedToolUrls={https://crm.corp/v1}",
    )
    assert env["TRIMTAB_ALLOWED_IMAGES"] == "registry.corp/agents,ghcr.io/trimtab"
    assert env["TRIMTAB_ALLOWED_ENDPOINTS"] == "https://llm.corp/v1"
    assert env["TRIMTAB_ALLOWED_TOOL_URLS"] == "https://crm.corp/v1"


def test_the_api_server_runs_under_its_own_account_with_review_rights_only(helm: str) -> None:
    objects = _objects(helm)
    api = chart.find(objects, "Deployment", "trimtab-api")
    pod = api["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "trimtab-api"
    assert pod["containers"][0]["args"][:2] == ["api", "serve"]
    assert "--no-auth" not in pod["containers"][0]["args"]
    delegator = chart.find(objects, "ClusterRoleBinding", "trimtab-api-auth-delegator")
    assert delegator["roleRef"]["name"] == "system:auth-delegator"
    reads = chart.find(objects, "ClusterRole", "trimtab-api")["rules"]
    assert reads == [{"apiGroups": ["trimtab.io"], "resources": ["agentpools", "agentworkflows"],
                      "verbs": ["get", "list"]}]  # fmt: skip
    service = chart.find(objects, "Service", "trimtab-api")
    assert service["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]
    operator = chart.find(objects, "Deployment", "trimtab")
    assert operator["spec"]["selector"]["matchLabels"] != api["spec"]["selector"]["matchLabels"]


def test_the_api_is_exposed_and_scaled_only_when_asked(helm: str) -> None:
    sets = ("api.autoscaling.enabled=true", "api.ingress.enabled=true", "api.ingress.host=t.corp",
            "api.httpRoute.enabled=true", "api.httpRoute.parentRefs[0].name=gw",
            "networkPolicy.enabled=true", "monitoring.serviceMonitor.enabled=true")  # fmt: skip
    objects = _objects(helm, *sets)
    hpa = chart.find(objects, "HorizontalPodAutoscaler", "trimtab-api")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "trimtab-api"
    assert "replicas" not in chart.find(objects, "Deployment", "trimtab-api")["spec"]
    ingress = chart.find(objects, "Ingress", "trimtab-api")
    assert ingress["spec"]["rules"][0]["host"] == "t.corp"
    route = chart.find(objects, "HTTPRoute", "trimtab-api")
    assert route["spec"]["parentRefs"] == [{"name": "gw"}]
    policy = chart.find(objects, "NetworkPolicy", "trimtab-api")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "api"
    monitor = chart.find(objects, "ServiceMonitor", "trimtab-api")
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    plain = _objects(helm)
    exposing = ("HorizontalPodAutoscaler", "Ingress", "HTTPRoute")
    assert not [o for o in plain if o["kind"] in exposing]
    missing = chart.template(helm, "api.ingress.enabled=true")
    assert missing.returncode != 0
    assert "api.ingress.host is required" in missing.stderr


def test_without_the_api_none_of_it_is_rendered(helm: str) -> None:
    objects = _objects(helm, "api.enabled=false")
    assert [o["metadata"]["name"] for o in objects if "api" in o["metadata"]["name"]] == []
    assert len([o for o in objects if o["kind"] == "Deployment"]) == 1
