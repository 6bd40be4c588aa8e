"""A worker's running tally of the current second: completions, busy time, and the
end-to-end latency (enqueue to done: queue wait plus execution) of each step, which is
what the autoscaler's latency target and the pool's reported p95 speak of.

Flushed once a second to Redis (trimtab.queue.stats), so publishing costs one pipelined
round trip per second per worker however many steps it completes.
"""

from __future__ import annotations

import dataclasses
import time

from trimtab.queue import connection
from trimtab.queue import stats as queue_stats
from trimtab.stats import sketch


@dataclasses.dataclass
class SecondTally:
    completed: int = 0
    busy_seconds: float = 0.0
    latencies: sketch.LatencySketch = dataclasses.field(default_factory=sketch.LatencySketch)
    runs: dict[tuple[str, str], sketch.LatencySketch] = dataclasses.field(default_factory=dict)

    def add(self, seconds: float, *, end_to_end: float) -> None:
        """A step that executed for `seconds` and took `end_to_end` since its enqueue."""
        self.completed += 1
        self.busy_seconds += seconds
        self.latencies.add(end_to_end)

    def run_finished(self, namespace: str, workflow: str, seconds: float) -> None:
        """A run this worker completed took `seconds` from submit to its last step."""
        self.runs.setdefault((namespace, workflow), sketch.LatencySketch()).add(seconds)

    def take(self) -> SecondTally:
        """Hand over what was counted and start afresh."""
        taken = dataclasses.replace(self)
        self.completed, self.busy_seconds = 0, 0.0
        self.latencies = sketch.LatencySketch()
        self.runs = {}
        return taken


async def publish(
    client: connection.Redis, taken: SecondTally, *, namespace: str, pool: str, consumer: str
) -> None:
    """Write one second's tally (`SecondTally.take`) for the autoscaler and status."""
    second = int(time.time())
    if taken.completed:
        await queue_stats.record_second(
            client,
            namespace=namespace,
            pool=pool,
            second=second,
            consumer=consumer,
            completed=taken.completed,
            busy_seconds=taken.busy_seconds,
            sketch=taken.latencies.to_bytes().decode(),
        )
    for (run_namespace, workflow), runs_sketch in taken.runs.items():
        await queue_stats.record_run_seconds(
            client,
            namespace=run_namespace,
            workflow=workflow,
            second=second,
            consumer=consumer,
            sketch=runs_sketch.to_bytes().decode(),
        )
