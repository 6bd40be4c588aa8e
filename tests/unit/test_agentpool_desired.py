"""AgentPool desired objects: placement per provider and capacity, the worker Deployment,
its Service and PodDisruptionBudget, and the scaler's replicas patch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pydantic
import pytest

from trimtab import config
from trimtab.api.v1alpha1 import agentpool
from trimtab.reconcile import naming
from trimtab.reconcile.agentpool import desired, placement, redis_access
from trimtab.worker import settings

NS, NAME, UID = "team-a", "support", "0b6f5c1e-0000-4000-8000-000000000001"
IMAGE, REDIS = "ghcr.io/trimtab/trimtab:test", "redis://redis.trimtab:6379/0"
SECRET_REF = {"name": "model-credentials", "key": "api-key"}
ACCESS = redis_access.RedisAccess(url=REDIS)

KARPENTER_SPOT = {
    "key": "karpenter.sh/capacity-type",
    "operator": "Equal",
    "value": "spot",
    "effect": "NoSchedule",
}
LOCAL_SPOT = {
    "key": "trimtab.io/spot",
    "operator": "Equal",
    "value": "true",
    "effect": "NoSchedule",
}
EKS_SPOT = {
    "key": "eks.amazonaws.com/capacityType",
    "operator": "Equal",
    "value": "SPOT",
    "effect": "NoSchedule",
}
GKE_SPOT = {
    "key": "cloud.google.com/gke-spot",
    "operator": "Equal",
    "value": "true",
    "effect": "NoSchedule",
}
AKS_SPOT = {
    "key": "kubernetes.azure.com/scalesetpriority",
    "operator": "Equal",
    "value": "spot",
    "effect": "NoSchedule",
}
# tolerationSeconds passes through: the pod leaves a spot node this long after its taint.
CUSTOM_SPOT = {
    "key": "pool",
    "operator": "Equal",
    "value": "cheap",
    "effect": "NoExecute",
    "tolerationSeconds": 300,
}
CUSTOM = {
    "spotNodeSelector": {"pool": "cheap"},
    "onDemandNodeSelector": {"pool": "steady"},
    "spotTolerations": [CUSTOM_SPOT],
}
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"


def pool_spec(**overrides: Any) -> agentpool.AgentPoolSpec:
    wire: dict[str, Any] = {
        "model": {
            "endpoint": "http://vllm.models:8000/v1",
            "name": "qwen",
            "apiKeySecretRef": SECRET_REF,
        }
    }
    wire.update(overrides)
    return agentpool.AgentPoolSpec.model_validate(wire)


def placement_spec(provider: str, capacity: str, **extra: Any) -> agentpool.PlacementSpec:
    wire: dict[str, Any] = {"provider": provider, "capacity": capacity, **extra}
    if provider == "custom":
        wire["custom"] = CUSTOM
    return agentpool.PlacementSpec.model_validate(wire)


def deployment(
    spec: agentpool.AgentPoolSpec | None = None, *, fallback_active: bool = False, **wiring: Any
) -> dict[str, Any]:
    wires = desired.Wiring(**{"image": IMAGE, "redis": ACCESS, **wiring})
    return desired.build_deployment(
        NS, NAME, UID, spec or pool_spec(), wiring=wires, fallback_active=fallback_active
    )


def pod(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def worker(obj: dict[str, Any]) -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in pod(obj)["containers"] if c["name"] == "worker"]
    assert len(found) == 1
    return found[0]


def all_objects(spec: agentpool.AgentPoolSpec) -> list[dict[str, Any]]:
    return [
        deployment(spec),
        desired.build_service(NS, NAME, UID),
        desired.build_pdb(NS, NAME, UID),
    ]


def walk(node: Any) -> Iterator[Any]:
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        yield from walk(child)


# --- placement -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "selector", "tolerations"),
    [
        pytest.param(
            "auto",
            {"karpenter.sh/capacity-type": "spot"},
            [KARPENTER_SPOT, LOCAL_SPOT],
            id="auto",
        ),
        pytest.param(
            "karpenter", {"karpenter.sh/capacity-type": "spot"}, [KARPENTER_SPOT], id="karpenter"
        ),
        pytest.param("eks", {"eks.amazonaws.com/capacityType": "SPOT"}, [EKS_SPOT], id="eks"),
        pytest.param("gke", {"cloud.google.com/gke-spot": "true"}, [GKE_SPOT], id="gke"),
        pytest.param(
            "aks", {"kubernetes.azure.com/scalesetpriority": "spot"}, [AKS_SPOT], id="aks"
        ),
        pytest.param("custom", {"pool": "cheap"}, [CUSTOM_SPOT], id="custom"),
    ],
)
def test_spot_requires_spot_nodes_and_tolerates_their_taints(
    provider: str, selector: dict[str, str], tolerations: list[dict[str, Any]]
) -> None:
    got = placement.placement_for(placement_spec(provider, "Spot"), fallback_active=False)
    assert got == placement.Placement(selector, tuple(tolerations), None, "Spot")


def not_in(key: str, value: str) -> dict[str, Any]:
    expression = {"key": key, "operator": "NotIn", "values": [value]}
    return {REQUIRED: {"nodeSelectorTerms": [{"matchExpressions": [expression]}]}}


ON_DEMAND = [
    pytest.param("auto", {"karpenter.sh/capacity-type": "on-demand"}, None, id="auto"),
    pytest.param("karpenter", {"karpenter.sh/capacity-type": "on-demand"}, None, id="karpenter"),
    pytest.param("eks", {"eks.amazonaws.com/capacityType": "ON_DEMAND"}, None, id="eks"),
    pytest.param("gke", {}, not_in("cloud.google.com/gke-spot", "true"), id="gke"),
    pytest.param("aks", {}, not_in("kubernetes.azure.com/scalesetpriority", "spot"), id="aks"),
    pytest.param("custom", {"pool": "steady"}, None, id="custom"),
]


@pytest.mark.parametrize(("provider", "selector", "affinity"), ON_DEMAND)
def test_on_demand_requires_on_demand_nodes_without_spot_tolerations(
    provider: str, selector: dict[str, str], affinity: dict[str, Any] | None
) -> None:
    got = placement.placement_for(placement_spec(provider, "OnDemand"), fallback_active=False)
    assert got == placement.Placement(selector, (), affinity, "OnDemand")


@pytest.mark.parametrize(("provider", "selector", "affinity"), ON_DEMAND)
def test_fallback_moves_spot_to_on_demand(
    provider: str, selector: dict[str, str], affinity: dict[str, Any] | None
) -> None:
    got = placement.placement_for(placement_spec(provider, "Spot"), fallback_active=True)
    assert got == placement.Placement(selector, (), affinity, "OnDemand")


@pytest.mark.parametrize(
    ("provider", "key", "value", "tolerations"),
    [
        pytest.param(
            "auto", "karpenter.sh/capacity-type", "spot", [KARPENTER_SPOT, LOCAL_SPOT], id="auto"
        ),
        pytest.param(
            "karpenter", "karpenter.sh/capacity-type", "spot", [KARPENTER_SPOT], id="karpenter"
        ),
        pytest.param("eks", "eks.amazonaws.com/capacityType", "SPOT", [EKS_SPOT], id="eks"),
        pytest.param("gke", "cloud.google.com/gke-spot", "true", [GKE_SPOT], id="gke"),
        pytest.param("aks", "kubernetes.azure.com/scalesetpriority", "spot", [AKS_SPOT], id="aks"),
        pytest.param("custom", "pool", "cheap", [CUSTOM_SPOT], id="custom"),
    ],
)
@pytest.mark.parametrize("fallback_active", [False, True], ids=["steady", "fallback-ignored"])
def test_spot_preferred_tolerates_and_prefers_spot_without_requiring_it(
    provider: str, key: str, value: str, tolerations: list[dict[str, Any]], fallback_active: bool
) -> None:
    spec = placement_spec(provider, "SpotPreferred")
    got = placement.placement_for(spec, fallback_active=fallback_active)
    expression = {"key": key, "operator": "In", "values": [value]}
    term = {"weight": 100, "preference": {"matchExpressions": [expression]}}
    assert got == placement.Placement({}, tuple(tolerations), {PREFERRED: [term]}, "Mixed")


def test_user_node_selector_and_tolerations_are_merged() -> None:
    gpu = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    spec = placement_spec(
        "karpenter",
        "Spot",
        nodeSelector={"karpenter.sh/capacity-type": "reserved", "gpu": "a100"},
        tolerations=[KARPENTER_SPOT, gpu],
    )
    got = placement.placement_for(spec, fallback_active=False)
    assert got.node_selector == {"karpenter.sh/capacity-type": "reserved", "gpu": "a100"}
    assert got.tolerations == (KARPENTER_SPOT, gpu)


def test_user_affinity_is_kept_and_node_requirements_are_anded() -> None:
    anti = {"podAntiAffinity": {PREFERRED: [{"weight": 1, "podAffinityTerm": {}}]}}
    arch = {
        "matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}]
    }
    user_pref = {"weight": 5, "preference": arch}
    user = {
        **anti,
        "nodeAffinity": {REQUIRED: {"nodeSelectorTerms": [arch]}, PREFERRED: [user_pref]},
    }
    spec = pool_spec(placement={"provider": "gke", "capacity": "OnDemand", "affinity": user})
    affinity = pod(deployment(spec))["affinity"]
    assert affinity["podAntiAffinity"] == anti["podAntiAffinity"]
    (term,) = affinity["nodeAffinity"][REQUIRED]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [
        *arch["matchExpressions"],
        {"key": "cloud.google.com/gke-spot", "operator": "NotIn", "values": ["true"]},
    ]
    assert affinity["nodeAffinity"][PREFERRED] == [user_pref]


def test_placement_reaches_the_pod_template() -> None:
    spec = pool_spec(placement={"provider": "aks", "capacity": "Spot"})
    template = deployment(spec)["spec"]["template"]
    assert template["spec"]["nodeSelector"] == {"kubernetes.azure.com/scalesetpriority": "spot"}
    assert template["spec"]["tolerations"] == [AKS_SPOT]
    assert template["metadata"]["labels"][naming.CAPACITY_LABEL] == "Spot"
    fallback = deployment(spec, fallback_active=True)["spec"]["template"]
    assert fallback["metadata"]["labels"][naming.CAPACITY_LABEL] == "OnDemand"
    assert "tolerations" not in fallback["spec"]


# --- deployment ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(pool_spec(), id="default"),
        pytest.param(pool_spec(replicas=7, scaling={"mode": "Manual"}), id="manual-replicas"),
    ],
)
def test_deployment_never_carries_replicas(spec: agentpool.AgentPoolSpec) -> None:
    assert "replicas" not in deployment(spec)["spec"]
    assert desired.build_replicas_patch(NS, NAME, 3) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": naming.worker_deployment(NAME), "namespace": NS},
        "spec": {"replicas": 3},
    }


def test_pod_passes_restricted_pod_security() -> None:
    """The pod, the worker container and an extra container all meet the profile."""
    sidecar = {"name": "vllm", "image": "vllm/vllm-openai"}
    spec = pool_spec(worker={"extraContainers": [sidecar]})
    obj = deployment(spec)
    ctx = pod(obj)["securityContext"]
    assert ctx["runAsNonRoot"] is True
    assert ctx["runAsUser"] != 0
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod(obj)["automountServiceAccountToken"] is False
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod(obj).get(key)
    assert all("hostPath" not in v for v in pod(obj)["volumes"])
    cctx = worker(obj)["securityContext"]
    assert cctx["allowPrivilegeEscalation"] is False
    assert cctx["runAsNonRoot"] is True
    assert cctx["capabilities"] == {"drop": ["ALL"]}
    assert cctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert cctx["readOnlyRootFilesystem"] is True
    assert "privileged" not in cctx
    [extra] = pod(obj)["containers"][1:]
    assert extra["image"] == sidecar["image"]
    assert extra["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_worker_container_runs_the_worker_command() -> None:
    spec = pool_spec(worker={"image": "example.com/custom:1"})
    container = worker(deployment(spec, metrics_port=9191))
    assert container["image"] == "example.com/custom:1"
    assert container["command"] == ["trimtab"]
    assert container["args"] == [
        "worker",
        "run",
        "--pool",
        f"{NS}/{NAME}",
        "--redis-url",
        REDIS,
        "--metrics-port",
        "9191",
    ]
    assert container["ports"] == [{"name": "metrics", "containerPort": 9191, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert worker(deployment())["image"] == IMAGE


@pytest.mark.parametrize(
    ("worker_wire", "resources"),
    [
        pytest.param({}, {"requests": {"cpu": "100m", "memory": "128Mi"}}, id="default"),
        pytest.param(
            {"resources": {"limits": {"memory": "1Gi"}}}, {"limits": {"memory": "1Gi"}}, id="user"
        ),
    ],
)
def test_worker_resources(worker_wire: dict[str, Any], resources: dict[str, Any]) -> None:
    assert worker(deployment(pool_spec(worker=worker_wire)))["resources"] == resources


def test_worker_env_carries_the_spec_and_user_variables() -> None:
    assert desired.POOL_SPEC_ENV == settings.POOL_SPEC_ENV
    assert desired.API_KEY_ENV == settings.API_KEY_ENV
    assert desired.CAPACITY_ENV == settings.CAPACITY_ENV
    user_env = [
        {"name": "LOG_LEVEL", "value": "info"},
        {"name": settings.POOL_SPEC_ENV, "value": "{}"},
        {"name": "LOG_LEVEL", "value": "debug"},
    ]
    spec = pool_spec(worker={"env": user_env})
    env = worker(deployment(spec))["env"]
    names = [e["name"] for e in env]
    assert names == [
        settings.POOL_SPEC_ENV, settings.CAPACITY_ENV, settings.API_KEY_ENV, "LOG_LEVEL"
    ]  # fmt: skip
    assert env[-1] == {"name": "LOG_LEVEL", "value": "debug"}
    parsed = settings.spec_from_env({e["name"]: e.get("value", "") for e in env})
    assert parsed == spec


@pytest.mark.parametrize(
    ("capacity", "label"), [("Spot", "Spot"), ("OnDemand", "OnDemand"), ("SpotPreferred", "Mixed")]
)
def test_workers_read_their_capacity_from_their_own_pod_label(capacity: str, label: str) -> None:
    d = deployment(pool_spec(placement={"capacity": capacity}))
    template = d["spec"]["template"]
    assert template["metadata"]["labels"][naming.CAPACITY_LABEL] == label
    source = next(e for e in worker(d)["env"] if e["name"] == settings.CAPACITY_ENV)
    path = source["valueFrom"]["fieldRef"]["fieldPath"]
    assert path == f"metadata.labels['{naming.CAPACITY_LABEL}']"


def test_workers_trace_where_the_admin_says_and_a_pool_may_not_say_otherwise() -> None:
    admin = config.worker_tracing_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
            "TRIMTAB_WORKER_OTEL_ENDPOINT": "http://collector.observability:4318",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.1",
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer secret",
        }
    )
    env = {e["name"]: e.get("value") for e in worker(deployment(tracing_env=admin))["env"]}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector.observability:4318"
    assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
    assert "OTEL_EXPORTER_OTLP_HEADERS" not in env, "a collector's credentials stay put"
    assert config.worker_tracing_env({"OTEL_TRACES_SAMPLER": "always_on"}) == ()
    with pytest.raises(pydantic.ValidationError, match="OTEL_"):
        pool_spec(worker={"env": [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://x"}]})


def test_api_key_is_only_ever_a_secret_reference() -> None:
    objects = json.loads(json.dumps(all_objects(pool_spec())))
    found = [
        n for n in walk(objects) if isinstance(n, dict) and n.get("name") == "TRIMTAB_MODEL_API_KEY"
    ]
    assert found == [{"name": "TRIMTAB_MODEL_API_KEY", "valueFrom": {"secretKeyRef": SECRET_REF}}]
    model = {"endpoint": "http://vllm.models:8000/v1", "name": "qwen"}
    keyless = json.dumps(all_objects(pool_spec(model=model)))
    assert "TRIMTAB_MODEL_API_KEY" not in keyless


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"model": {"endpoint": "http://other:8000/v1", "name": "qwen"}}, id="model"),
        pytest.param({"worker": {"concurrency": 2}}, id="concurrency"),
        pytest.param({"worker": {"image": "example.com/w:2"}}, id="image"),
        pytest.param({"placement": {"capacity": "Spot"}}, id="placement"),
        pytest.param({"queue": {"maxDeliveries": 9}}, id="queue"),
    ],
)
def test_spec_hash_changes_with_the_spec(change: dict[str, Any]) -> None:
    before, after = pool_spec(), pool_spec(**change)
    assert desired.spec_hash(before) != desired.spec_hash(after)
    annotation = "trimtab.io/spec-hash"
    assert deployment(after)["spec"]["template"]["metadata"]["annotations"] == {
        annotation: desired.spec_hash(after)
    }


def test_spec_hash_is_stable_and_ignores_replicas() -> None:
    spec = pool_spec()
    again = agentpool.AgentPoolSpec.model_validate(json.loads(json.dumps(spec.to_wire())))
    assert desired.spec_hash(spec) == desired.spec_hash(again)
    assert len(desired.spec_hash(spec)) == 16
    # The scale subresource writes spec.replicas; scaling must not roll the pods.
    assert desired.spec_hash(pool_spec(replicas=4)) == desired.spec_hash(spec)


@pytest.mark.parametrize(
    ("spread", "keys"),
    [
        pytest.param(None, ["topology.kubernetes.io/zone", "kubernetes.io/hostname"], id="default"),
        pytest.param(False, None, id="disabled"),
    ],
)
def test_topology_spread(spread: bool | None, keys: list[str] | None) -> None:
    wire = {} if spread is None else {"spreadAcrossZones": spread}
    constraints = pod(deployment(pool_spec(placement=wire))).get("topologySpreadConstraints")
    if keys is None:
        assert constraints is None
        return
    assert constraints is not None
    assert [c["topologyKey"] for c in constraints] == keys
    for c in constraints:
        assert c["maxSkew"] == 1
        assert c["whenUnsatisfiable"] == "ScheduleAnyway"
        assert c["labelSelector"] == {"matchLabels": naming.selector_labels(NAME)}


# --- service, PDB, ownership, purity ---------------------------------------------------


def test_every_object_is_owned_by_the_pool() -> None:
    owner = {
        "apiVersion": "trimtab.io/v1alpha1",
        "kind": "AgentPool",
        "name": NAME,
        "uid": UID,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    for obj in all_objects(pool_spec()):
        assert obj["metadata"]["ownerReferences"] == [owner], obj["kind"]
        assert obj["metadata"]["namespace"] == NS
        assert obj["metadata"]["labels"] == naming.object_labels(NAME)


def test_selectors_match_the_pod_labels() -> None:
    dep, svc, pdb = all_objects(pool_spec())
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert svc["spec"]["selector"] == selector
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    assert svc["metadata"]["name"] == naming.metrics_service(NAME)
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"][0]["targetPort"] == "metrics"
    assert pdb["metadata"]["name"] == naming.disruption_budget(NAME)
    assert pdb["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in pdb["spec"]
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_builders_are_pure() -> None:
    user_affinity: dict[str, Any] = {"podAntiAffinity": {PREFERRED: []}}
    spec = pool_spec(
        placement={"capacity": "SpotPreferred", "affinity": user_affinity},
        worker={"extraContainers": [{"name": "side", "image": "x"}]},
    )
    first = all_objects(spec)
    first[0]["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["mutated"] = True
    first[0]["spec"]["template"]["spec"]["containers"][1]["mutated"] = True
    assert all_objects(spec) != first
    assert all_objects(spec) == all_objects(spec)
    assert spec.placement.affinity == user_affinity


@pytest.mark.parametrize(
    ("scaling", "replicas", "initial"),
    [
        ({"minReplicas": 0}, None, 0),
        ({"minReplicas": 3, "maxReplicas": 5}, None, 3),
        ({"mode": "Manual", "minReplicas": 0}, 4, 4),
        ({"mode": "External", "minReplicas": 2}, None, 2),
    ],
    ids=["auto-from-zero", "auto-at-min", "manual-from-spec", "external-without-replicas"],
)
def test_initial_replicas(scaling: dict[str, Any], replicas: int | None, initial: int) -> None:
    spec = agentpool.AgentPoolSpec.model_validate(
        {
            "model": {"endpoint": "http://m/v1", "name": "m"},
            "scaling": scaling,
            **({"replicas": replicas} if replicas is not None else {}),
        }
    )
    assert desired.initial_replicas(spec) == initial
