"""The chart rendered by the real (pinned) helm, for the chart's unit and e2e tests."""

from __future__ import annotations

import pathlib
import subprocess
from typing import Any

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "trimtab"
DEV_VALUES = CHART / "values-dev.yaml"


def helm_binary() -> str:
    """Path of the pinned helm, built on first use (hack/build-helm.sh)."""
    built = subprocess.run(
        [str(ROOT / "hack" / "build-helm.sh")], check=True, capture_output=True, text=True
    )
    return built.stdout.strip()


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
