#!/usr/bin/env python3
"""The guardrails under faults: 2,000 runs of the customer-support workflow (the
checked-in sample) against a simulator whose models answer 5 % with HTTP 500, 2 % by
hanging past the pool's timeout and 5 % with malformed JSON.

Two pools (small and large, as in the samples), two worker processes each, on a real
redis-server; runs submitted at 100 per second. The sample's tool steps call the
simulator's tool endpoint instead of the CRM and search services (and so carry no
Secret-backed header). Prints: runs succeeded, in review, dead-lettered, lost (must be
0), duplicated completions (must be 0), p50 and p95 run time, retries per run, and
the share of malformed outputs that reached a completed run (must be 0). Asserts
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import os
import pathlib
import time
from collections import Counter
from typing import Any

import _local
import jsonschema
import yaml

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import runs
from trimtab.sdk import Client

NS = "faults"
RUNS = int(os.environ.get("TRIMTAB_BENCH_RUNS", "2000"))
RATE = 100.0  # submissions per second
ROOT = pathlib.Path(__file__).resolve().parents[2]
FAULTS = {"rate_500": 0.05, "rate_timeout": 0.02, "rate_malformed": 0.05}
SIM = {
    "seed": 42,
    "tool_delay_seconds": 0.01,
    "models": {
        "sim-small": {
            "ttft_seconds": 0.05,
            "per_token_seconds": 0.0005,
            "capacity": 64,
            "timeout_hang_seconds": 3.0,
            **FAULTS,
        },
        "sim-large": {
            "ttft_seconds": 0.15,
            "per_token_seconds": 0.001,
            "capacity": 64,
            "timeout_hang_seconds": 3.0,
            **FAULTS,
        },
    },
}
ENDED = {"succeeded", "failed", "review"}


def _sample(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "manifests" / "samples" / f"{name}.yaml").read_text()))


def _pool(name: str, endpoint: str) -> dict[str, Any]:
    doc = _sample(f"agentpool-{name}")
    doc["metadata"]["namespace"] = NS
    doc["spec"]["model"]["endpoint"] = endpoint
    doc["spec"]["model"]["timeoutSeconds"] = 2
    doc["spec"]["worker"]["concurrency"] = 64
    return doc


def _workflow(sim: str) -> awf.AgentWorkflowSpec:
    spec = copy.deepcopy(_sample("agentworkflow-customer-support")["spec"])
    tools = sim.removesuffix("/v1") + "/tools"
    for step in spec["steps"]:
        if step.get("kind") == "tool":
            step["tool"]["url"] = f"{tools}/{step['name']}"
            step["tool"].pop("headers", None)
    return awf.AgentWorkflowSpec.model_validate(spec)


async def _submit(client: Client) -> list[str]:
    refs, t0 = [], time.perf_counter()
    for i in range(RUNS):
        await asyncio.sleep(max(0.0, t0 + i / RATE - time.perf_counter()))
        inputs = {"customer_id": f"c{i % 300}", "message": f"My invoice {i % 50} looks wrong"}
        refs.append(await client.submit(NS, "customer-support", inputs))
    return refs


async def _wait_all(client: Client, refs: list[str], within: float) -> dict[str, runs.RunState]:
    deadline, final = time.monotonic() + within, {}
    while len(final) < len(refs) and time.monotonic() < deadline:
        for ref in refs:
            if ref not in final:
                state = await client.get(ref)
                if state.status in ENDED:
                    final[ref] = state
        await asyncio.sleep(0.5)
    return final


async def _events(client: Client, ref: str) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    after = "0"
    while True:
        batch = await runs.events(client.redis, *ref.split("/", 1), after=after, count=500)
        if not batch:
            return counts
        for eid, fields in batch:
            counts[(fields.get("type", ""), fields.get("step", ""))] += 1
            after = eid


def _malformed_completions(spec: awf.AgentWorkflowSpec, state: runs.RunState) -> int:
    bad = 0
    for step in spec.steps:
        schema = step.output.json_schema if step.output else None
        got = state.steps.get(step.name)
        if schema is None or got is None or got.state != "done":
            continue
        try:
            jsonschema.validate(got.output, schema)
        except jsonschema.ValidationError:
            bad += 1
    return bad


@dataclasses.dataclass
class Tally:
    total: int = 0
    submitted_s: float = 0.0
    statuses: Counter[str] = dataclasses.field(default_factory=Counter)
    lost: int = 0
    duplicates: int = 0
    retries: int = 0
    malformed: int = 0
    checked: int = 0
    seconds: list[float] = dataclasses.field(default_factory=list)


async def _tally(
    client: Client, spec: awf.AgentWorkflowSpec, refs: list[str], final: dict[str, runs.RunState]
) -> Tally:
    out = Tally(total=len(refs), lost=len(refs) - len(final))
    out.statuses.update(s.status for s in final.values())
    for ref, state in final.items():
        events = await _events(client, ref)
        out.retries += sum(
            v for (k, _), v in events.items() if k in ("step_retry", "step_escalated")
        )
        out.duplicates += sum(v - 1 for (k, _), v in events.items() if k == "step_done" and v > 1)
        if state.status == "succeeded":
            out.malformed += _malformed_completions(spec, state)
            out.checked += sum(1 for s in spec.steps if s.output is not None)
            if state.ended_ms:
                out.seconds.append((state.ended_ms - state.created_ms) / 1000)
    return out


async def measure(redis_url: str, sim: str) -> Tally:
    client = Client(redis_url)
    try:
        spec = _workflow(sim)
        await client.publish(NS, "customer-support", spec)
        t0 = time.perf_counter()
        refs = await _submit(client)
        submitted = time.perf_counter() - t0
        final = await _wait_all(client, refs, within=180)
        tally = await _tally(client, spec, refs, final)
        tally.submitted_s = submitted
        return tally
    finally:
        await client.aclose()


def _print(t: Tally) -> None:
    print(
        f"{t.total} customer-support runs, submitted over {t.submitted_s:.1f} s; model faults: "
        "5 % HTTP 500, 2 % timeouts, 5 % malformed JSON"
    )
    print(f"  succeeded                 {t.statuses['succeeded']:6d}")
    print(f"  in review                 {t.statuses['review']:6d}")
    print(f"  dead-lettered (failed)    {t.statuses['failed']:6d}")
    print(f"  lost                      {t.lost:6d}   (must be 0)")
    print(f"  duplicated completions    {t.duplicates:6d}   (must be 0)")
    if t.seconds:
        p50, p95 = _local.percentile(t.seconds, 50), _local.percentile(t.seconds, 95)
        print(f"  run time (succeeded)      p50 {p50:.2f} s, p95 {p95:.2f} s")
    print(f"  retries per run           {t.retries / t.total:6.2f}")
    share = t.malformed / t.checked if t.checked else 0.0
    print(
        f"  malformed outputs in completed runs: {t.malformed} of {t.checked} checked "
        f"({share:.2%}, must be 0)"
    )


def main() -> None:
    with _local.services(SIM) as (redis_url, sim, work), contextlib.ExitStack() as stack:
        for name in ("support-small", "support-large"):
            (work / name).mkdir()
            stack.enter_context(
                _local.workers(redis_url, work / name, pool=_pool(name, sim), count=2)
            )
        _print(asyncio.run(measure(redis_url, sim)))


if __name__ == "__main__":
    main()
