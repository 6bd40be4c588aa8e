"""A minimal kopf handler set used to prove the harness: it echoes spec into status."""

from __future__ import annotations

from typing import Any

import kopf

GROUP, VERSION, PLURAL = "harness.trimtab.io", "v1", "probes"


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def echo_spec(spec: kopf.Spec, meta: kopf.Meta, patch: kopf.Patch, **_: Any) -> None:
    patch.status["echo"] = spec.get("message", "")
    patch.status["observedGeneration"] = meta["generation"]
