"""What an AgentPool's author may ask of the cluster, decided before anything is built.

The trust model: cluster admins (who install the operator) are trusted; authors of
AgentPools are not. Whatever a spec says, every container the operator emits meets
the Pod Security "restricted" profile: the worker's security context is the operator's
own, and an extra container's is forced to the same rules (`restricted`). What the
profile cannot express, the admin decides in the chart's values (`security.*`, passed
to the operator as a `Policy`): which images pods may run and which model endpoints a
pool's API key may be sent to. A spec outside the policy, or one whose extra container
asks for what the profile forbids (privileged, added capabilities, a host port, root,
custom SELinux options, an unconfined AppArmor or seccomp profile) is refused whole:
`problems` names each reason, the pool's SpecValid condition says so, and no object is
built from it.

Secret references (the model's API key, `env[].valueFrom`) name Secrets of the pool's
own namespace only; the operator cannot know which of them the author may read, so
writing AgentPools should be granted to those who may read the namespace's Secrets
(the README's trust model says the same).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from trimtab.api.v1alpha1 import agentpool
from trimtab.reconcile.policy import Policy

RUNTIME_DEFAULT_SECCOMP = {"type": "RuntimeDefault"}
# The one capability the restricted profile lets a container add.
ALLOWED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
# The restricted profile's container fields, as the operator sets them on every one.
RESTRICTED: Mapping[str, Any] = {
    "allowPrivilegeEscalation": False,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": RUNTIME_DEFAULT_SECCOMP,
}


@dataclasses.dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def problems(spec: agentpool.AgentPoolSpec, policy: Policy, *, default_image: str) -> list[Problem]:
    """Everything in `spec` the operator refuses to build; the operator's own worker
    image is always allowed."""
    found: list[Problem] = []
    image = spec.worker.image
    if image and image != default_image and not policy.allows_image(image):
        found.append(Problem("spec.worker.image", f"image {image} is not allowed here"))
    if not policy.allows_endpoint(spec.model.endpoint):
        found.append(
            Problem("spec.model.endpoint", f"endpoint {spec.model.endpoint} is not allowed here")
        )
    for i, container in enumerate(spec.worker.extra_containers):
        path = f"spec.worker.extraContainers[{i}]"
        found.extend(Problem(f"{path}.{p}", m) for p, m in _container_problems(container))
        extra_image = str(container.get("image") or "")
        if not policy.allows_image(extra_image):
            found.append(Problem(f"{path}.image", f"image {extra_image} is not allowed here"))
    return found


def _container_problems(container: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    ctx = container.get("securityContext") or {}
    if ctx.get("privileged"):
        yield "securityContext.privileged", "privileged containers are not allowed"
    if ctx.get("allowPrivilegeEscalation"):
        yield "securityContext.allowPrivilegeEscalation", "privilege escalation is not allowed"
    added = set((ctx.get("capabilities") or {}).get("add") or []) - ALLOWED_CAPABILITIES
    if added:
        yield "securityContext.capabilities.add", f"capabilities {sorted(added)} are not allowed"
    if ctx.get("runAsUser") == 0 or ctx.get("runAsNonRoot") is False:
        yield "securityContext.runAsUser", "containers may not run as root"
    if (ctx.get("seccompProfile") or {}).get("type") == "Unconfined":
        yield "securityContext.seccompProfile", "an unconfined seccomp profile is not allowed"
    if ctx.get("seLinuxOptions"):
        yield "securityContext.seLinuxOptions", "custom SELinux options are not allowed"
    if (ctx.get("appArmorProfile") or {}).get("type") == "Unconfined":
        yield "securityContext.appArmorProfile", "an unconfined AppArmor profile is not allowed"
    if ctx.get("procMount") not in (None, "Default"):
        yield "securityContext.procMount", "only the default /proc mount is allowed"
    if (ctx.get("windowsOptions") or {}).get("hostProcess"):
        yield "securityContext.windowsOptions.hostProcess", "host processes are not allowed"
    for j, port in enumerate(container.get("ports") or []):
        if isinstance(port, Mapping) and port.get("hostPort"):
            yield f"ports[{j}].hostPort", "host ports are not allowed"


def restricted(container: Mapping[str, Any]) -> dict[str, Any]:
    """`container` with the restricted profile's fields set whatever it said; the
    fields the profile leaves open (readOnlyRootFilesystem, runAsUser other than 0)
    stay as the author set them."""
    out = copy.deepcopy(dict(container))
    ctx = dict(out.get("securityContext") or {})
    for key in ("privileged", "procMount", "windowsOptions", "seLinuxOptions"):
        ctx.pop(key, None)
    if (ctx.get("appArmorProfile") or {}).get("type") == "Unconfined":
        ctx.pop("appArmorProfile")
    asked = (ctx.get("capabilities") or {}).get("add") or []
    ctx = {**ctx, **copy.deepcopy(dict(RESTRICTED))}
    kept = sorted(set(asked) & ALLOWED_CAPABILITIES)
    if kept:
        ctx["capabilities"] = {"drop": ["ALL"], "add": kept}
    if ctx.get("runAsUser") == 0:
        ctx.pop("runAsUser")
    out["securityContext"] = ctx
    for port in out.get("ports") or []:
        if isinstance(port, dict):
            port.pop("hostPort", None)
    return out
