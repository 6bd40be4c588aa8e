"""Whatever a model returns (random bytes, random JSON, JSON that almost fits), the
worker never crashes and every step ends in a defined state: done with an output that
fits its schema, in review, or dead-lettered. Hypothesis draws the outputs; the real
simulator serves them (fixed_content) to a real worker process."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import runtime
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.sdk import SyncClient
from trimtab.sdk import client as sdk_client

NS = "prop"
SCHEMA = {
    "type": "object",
    "required": ["response", "confidence"],
    "properties": {
        "response": {"type": "string", "minLength": 1},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
}
SIM = {"seed": 5, "models": {"any": {"ttft_seconds": 0.0, "per_token_seconds": 0.0}}}
ENDED = {"succeeded", "failed", "review"}

json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
almost = st.fixed_dictionaries(
    {"response": st.text(max_size=20), "confidence": st.floats(-1, 2, allow_nan=False)}
)
outputs = (
    st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
    | json_values.map(json.dumps)
    | almost.map(json.dumps)
)


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, redis_server_url: str
) -> Iterator[tuple[str, SyncClient]]:
    """The simulator, the workflow, and one worker process serving it."""
    redis_url = redis_server_url
    work = tmp_path_factory.mktemp("prop")
    with runtime.running_sim(work, SIM) as sim:
        spec = {
            "steps": [
                {
                    "name": "answer",
                    "pool": "p",
                    "prompt": "Answer {{ inputs.q }}",
                    "output": {"schema": SCHEMA},
                    "retry": {"maxAttempts": 2, "backoff": {"initialSeconds": 0.01}},
                    "fallback": {"humanReview": True},
                }
            ]
        }

        async def publish() -> None:
            client = sdk_client.Client(redis_url)
            try:
                await client.publish(NS, "prop", awf.AgentWorkflowSpec.model_validate(spec))
            finally:
                await client.aclose()

        asyncio.run(publish())
        manifest = runtime.write_pool_manifest(
            work / "pool.json", NS, "p", runtime.pool_spec(sim, model="any")
        )
        with runtime.worker_process(manifest, redis_url, work / "worker.log") as proc:
            yield sim, SyncClient(redis_url)
            assert proc.poll() is None, (work / "worker.log").read_text()[-3000:]


def _serve(sim: str, content: str) -> None:
    admin = sim.removesuffix("/v1") + "/admin/models/any"
    httpx.put(admin, json={"fixed_content": content}).raise_for_status()


def _final(client: SyncClient, run: str) -> Any:
    deadline = time.monotonic() + 15
    while True:
        state = client.get(run)
        if state.status in ENDED:
            return state
        assert time.monotonic() < deadline, f"run {run} never ended: {state.steps}"
        time.sleep(0.01)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=outputs)
def test_any_model_output_ends_the_step_in_a_defined_state(
    setup: tuple[str, SyncClient], content: str
) -> None:
    sim, client = setup
    _serve(sim, content)
    run = client.submit(NS, "prop", {"q": "x"})
    state = _final(client, run)
    step = state.steps["answer"]
    if state.status == "succeeded":
        assert step.state == "done"
        jsonschema.validate(step.output, SCHEMA)  # nothing malformed ever completes a run
        assert json.loads(content) == step.output
    else:
        assert (state.status, step.state) == ("review", "review")
        assert step.attempt == 2  # both attempts were made before review
        assert step.error is not None
        assert step.error.startswith("invalid_output")
