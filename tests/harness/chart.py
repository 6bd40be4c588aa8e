"""The chart rendered by the real (pinned) helm, for the chart's unit and e2e tests."""

from __future__ import annotations

import base64
import os
import pathlib
import re
import subprocess
from typing import Any

import yaml

from trimtab.api.v1alpha1 import kinds
from trimtab.kube import objects as kube_objects
from trimtab_dev.devcluster import binaries, layout

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "trimtab"
DEV_VALUES = CHART / "values-dev.yaml"
TRIMTAB_CRDS = tuple(k.crd_name for k in kinds.KINDS)


def hack_output(script: str) -> str:
    """What a hack/ script prints: the path of a pinned tool it built or fetched, once."""
    done = subprocess.run([str(ROOT / "hack" / script)], check=True, capture_output=True, text=True)
    return done.stdout.strip()


def helm_binary() -> str:
    """Path of the pinned helm, built on first use (hack/build-helm.sh)."""
    return hack_output("build-helm.sh")


def template(
    helm: str, *sets: str, files: tuple[pathlib.Path, ...] = ()
) -> subprocess.CompletedProcess[str]:
    argv = [helm, "template", "trimtab", str(CHART), "--namespace", "trimtab-system"]
    for path in files:
        argv += ["-f", str(path)]
    for value in sets:
        argv += ["--set", value]
    return subprocess.run(argv, check=False, capture_output=True, text=True)


def objects(helm: str, *sets: str, files: tuple[pathlib.Path, ...] = ()) -> list[dict[str, Any]]:
    done = template(helm, *sets, files=files)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def find(found: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [o for o in found if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(matches) == 1, [(o["kind"], o["metadata"]["name"]) for o in found]
    return matches[0]


def pod_specs(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pod template of every workload the chart renders."""
    workloads = ("Deployment", "StatefulSet", "DaemonSet", "Job")
    return [o["spec"]["template"]["spec"] for o in found if o["kind"] in workloads]


def assert_restricted(pod: dict[str, Any]) -> None:
    """The fields the Pod Security `restricted` profile checks, on one pod spec."""
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(key)
    assert all("hostPath" not in v for v in pod.get("volumes", []))
    for container in pod["containers"]:
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        assert ctx["readOnlyRootFilesystem"] is True
        assert "privileged" not in ctx


def run(argv: list[str], kubeconfig: pathlib.Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    return subprocess.run(argv, check=False, capture_output=True, text=True, env=env)


def adopt_crds(kube: kube_objects.ObjectStore, release: str, namespace: str) -> None:
    """The session's CRDs exist already (installed by the test fixture): mark them as
    this release's, as `helm install` requires before it takes them over."""
    for name in TRIMTAB_CRDS:
        meta = {
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {
                "meta.helm.sh/release-name": release,
                "meta.helm.sh/release-namespace": namespace,
            },
        }
        kube.patch("apiextensions.k8s.io/v1", "CustomResourceDefinition", name, {"metadata": meta})


def service_account_kubeconfig(
    lay: layout.Layout, namespace: str, account: str, out: pathlib.Path
) -> pathlib.Path:
    kubectl = str(binaries.ensure_built() / "kubectl")
    token = run([kubectl, "create", "token", account, "-n", namespace], lay.kubeconfig)
    assert token.returncode == 0, token.stderr
    admin = yaml.safe_load(lay.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": account, "user": {"token": token.stdout.strip()}}],
        "contexts": [
            {"name": account, "context": {"cluster": admin["clusters"][0]["name"], "user": account}}
        ],
        "current-context": account,
    }
    out.write_text(yaml.safe_dump(config))
    return out


def secret_value(found: list[dict[str, Any]], namespace: str, name: str, key: str) -> str:
    """A key of a rendered Secret, decoded."""
    [secret] = [
        o
        for o in found
        if o["kind"] == "Secret"
        and o["metadata"]["name"] == name
        and o["metadata"]["namespace"] == namespace
    ]
    return base64.b64decode(secret["data"][key]).decode()


def expand(text: str, env: dict[str, str]) -> str:
    """`$(VAR)` in a container's command or argument replaced as the kubelet does (an
    unknown variable stays as written)."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), text)
