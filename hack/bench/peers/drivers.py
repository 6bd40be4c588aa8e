"""How the benchmark drives each framework: worker commands, readiness, enqueueing, and
how it tells a job is finished (checked in Redis by the parent, one key per job).

Completion is read from each framework's own bookkeeping, never from an extra write in
the job: Trimtab's run hash `status`, arq's and Celery's result keys, RQ's job hash
`status`, Dramatiq's result-backend key. Every job's stored result is checked after the
clock stops, to count any job that did not really run.

Trimtab's `return` job is a model step answered from its response cache (the cache was
filled before the clock started): the step calls nothing and returns the stored
output, after a cache lookup in Redis that the peers' constant return does not make.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import sys
from collections.abc import Awaitable, Callable
from concurrent import futures
from typing import Any

import redis

from peers import READY_KEY, is_echo

PY = sys.executable
BIN = pathlib.Path(PY).parent
SUBMITTERS = 32  # concurrent async submits (the SDK's Redis pool holds 64 connections)
THREADS = 4  # concurrent sync enqueuers, for the sync clients


async def _fan_out(m: int, submit: Callable[[int], Awaitable[str]]) -> list[str]:
    ids: list[str] = [""] * m

    async def submitter(k: int) -> None:
        for i in range(k, m, SUBMITTERS):
            ids[i] = await submit(i)

    await asyncio.gather(*(submitter(k) for k in range(SUBMITTERS)))
    return ids


def _threaded(m: int, submit: Callable[[int], str]) -> list[str]:
    with futures.ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(submit, range(m), chunksize=64))


def _ready_count(r: redis.Redis, n: int) -> bool:
    return int(r.get(READY_KEY) or 0) >= n


def _run_key(namespace: str, run_id: str) -> str:
    from trimtab.queue import keys  # noqa: PLC0415

    return keys.run(namespace, run_id)


def _shape() -> str:
    return os.environ.get("BENCH_SHAPE", "echo")


class Trimtab:
    name = "trimtab"
    ns, pool, workflow = "bench", "p", "noop"

    def __init__(self, redis_url: str, sim_port: int, tmp: pathlib.Path) -> None:
        self.redis_url, self.sim_port = redis_url, sim_port
        self.manifest = tmp / "pool.json"

    def _step(self, base: str) -> dict[str, Any]:
        if _shape() == "return":
            return {"name": "call", "prompt": "the same every time", "cache": {"ttlSeconds": 3600}}
        return {
            "name": "call",
            "kind": "tool",
            "tool": {"url": f"{base}/tools/echo", "body": '{"n": 1}'},
        }

    def setup(self) -> None:
        from trimtab.api.v1alpha1.agentpool import AgentPoolSpec  # noqa: PLC0415
        from trimtab.api.v1alpha1.agentworkflow import AgentWorkflowSpec  # noqa: PLC0415
        from trimtab.sdk import Client  # noqa: PLC0415

        base = f"http://127.0.0.1:{self.sim_port}"
        spec = AgentPoolSpec.model_validate(
            {
                "model": {"endpoint": f"{base}/v1", "name": "sim-small", "timeoutSeconds": 10},
                "worker": {"concurrency": 64},
            }
        )
        self.manifest.write_text(
            json.dumps(
                {
                    "apiVersion": "trimtab.io/v1alpha1",
                    "kind": "AgentPool",
                    "metadata": {"name": self.pool, "namespace": self.ns},
                    "spec": spec.to_wire(),
                }
            )
        )
        wf = AgentWorkflowSpec.model_validate(
            {
                "defaultPool": self.pool,
                "steps": [self._step(base)],
            }
        )

        async def publish() -> None:
            client = Client(self.redis_url)
            try:
                await client.publish(self.ns, self.workflow, wf)
            finally:
                await client.aclose()

        asyncio.run(publish())
        if _shape() == "return":
            self._fill_cache()

    def _fill_cache(self) -> None:
        """One run with a worker of its own, so the measured runs all hit the cache."""
        import subprocess  # noqa: PLC0415

        from trimtab.sdk import Client  # noqa: PLC0415

        async def one() -> None:
            client = Client(self.redis_url)
            try:
                result = await client.result(
                    await client.submit(self.ns, self.workflow, {}), timeout=60
                )
                assert result.status == "succeeded", result
            finally:
                await client.aclose()

        (cmd,) = self.worker_cmds(1)
        worker = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            asyncio.run(one())
        finally:
            worker.terminate()
            worker.wait(timeout=30)

    def worker_cmds(self, n: int) -> list[list[str]]:
        cmd = [PY, "-m", "trimtab", "worker", "run", "-f", str(self.manifest)]
        return [[*cmd, "--redis-url", self.redis_url]] * n

    def ready(self, r: redis.Redis, n: int) -> bool:
        # A worker is serving once its claim loop sits in XREADGROUP. (XINFO CONSUMERS
        # would not do: a blocking read on an empty stream does not create the consumer.)
        return sum(c.get("cmd") == "xreadgroup" for c in r.client_list()) >= n

    def enqueue(self, m: int) -> list[str]:
        from trimtab.sdk import Client  # noqa: PLC0415

        async def go() -> list[str]:
            client = Client(self.redis_url)
            try:
                return await _fan_out(m, lambda i: client.submit(self.ns, self.workflow, {"i": i}))
            finally:
                await client.aclose()

        return [ref.split("/", 1)[1] for ref in asyncio.run(go())]

    def probe(self, pipe: Any, job: str) -> None:
        pipe.hget(_run_key(self.ns, job), "status")

    def done(self, reply: Any) -> bool:
        return reply in (b"succeeded", b"failed")

    def good(self, r: redis.Redis, jobs: list[str]) -> int:
        pipe = r.pipeline(transaction=False)
        from trimtab.queue import wire  # noqa: PLC0415

        out = wire.step_field("call", wire.StepField.OUTPUT)
        field = wire.RunField.CACHE_HITS.value if _shape() == "return" else out
        for job in jobs:
            pipe.hget(_run_key(self.ns, job), field)
        found = [out for out in pipe.execute() if out]
        if _shape() == "return":
            return sum(int(hits) == 1 for hits in found)
        return sum(is_echo(json.loads(out)) for out in found)


class Arq:
    name = "arq"

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url

    def setup(self) -> None:
        pass

    def worker_cmds(self, n: int) -> list[list[str]]:
        return [[PY, "-m", "peers.arq_app"]] * n

    def ready(self, r: redis.Redis, n: int) -> bool:
        return _ready_count(r, n)

    def enqueue(self, m: int) -> list[str]:
        from arq import create_pool  # noqa: PLC0415
        from arq.connections import RedisSettings  # noqa: PLC0415

        async def go() -> list[str]:
            pool = await create_pool(RedisSettings.from_dsn(self.redis_url))

            async def submit(i: int) -> str:
                job = await pool.enqueue_job("noop")
                assert job is not None
                return job.job_id

            try:
                return await _fan_out(m, submit)
            finally:
                await pool.aclose()

        return asyncio.run(go())

    def probe(self, pipe: Any, job: str) -> None:
        pipe.exists(f"arq:result:{job}")

    def done(self, reply: Any) -> bool:
        return bool(reply)

    def good(self, r: redis.Redis, jobs: list[str]) -> int:
        from arq.jobs import deserialize_result  # noqa: PLC0415

        raw = r.mget([f"arq:result:{job}" for job in jobs])
        return sum(bool(b) and is_echo(deserialize_result(b).result) for b in raw)


class Celery:
    name = "celery"

    def setup(self) -> None:
        pass

    def worker_cmds(self, n: int) -> list[list[str]]:
        # The solo pool: each worker process runs tasks itself, one at a time. Against
        # `--pool=prefork --concurrency=1` (two processes per worker, a hand-off per task)
        # it was level with one worker and ahead with 2 and 4, so it is Celery's best here.
        # Mingle and gossip are cluster chatter this single-host run does not need.
        base = [PY, "-m", "celery", "-A", "peers.celery_app", "worker", "--pool=solo"]
        base += ["--loglevel=WARNING", "--without-mingle", "--without-gossip"]
        return [[*base, "-n", f"w{i}@%h"] for i in range(n)]

    def ready(self, r: redis.Redis, n: int) -> bool:
        return _ready_count(r, n)

    def enqueue(self, m: int) -> list[str]:
        from peers.celery_app import noop  # noqa: PLC0415

        return _threaded(m, lambda i: noop.delay().id)

    def probe(self, pipe: Any, job: str) -> None:
        pipe.exists(f"celery-task-meta-{job}")

    def done(self, reply: Any) -> bool:
        return bool(reply)

    def good(self, r: redis.Redis, jobs: list[str]) -> int:
        raw = r.mget([f"celery-task-meta-{job}" for job in jobs])
        return sum(bool(b) and is_echo(json.loads(b).get("result")) for b in raw)


class Rq:
    name = "rq"

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url

    def setup(self) -> None:
        pass

    def worker_cmds(self, n: int) -> list[list[str]]:
        # SimpleWorker runs jobs in the worker process. RQ's default Worker forks a child
        # per job, which is several times slower and cannot keep a pooled HTTP client.
        cmd = [str(BIN / "rq"), "worker", "--worker-class", "rq.SimpleWorker"]
        return [[*cmd, "--url", self.redis_url, "--logging_level", "WARNING", "default"]] * n

    def ready(self, r: redis.Redis, n: int) -> bool:
        return r.scard("rq:workers") >= n

    def enqueue(self, m: int) -> list[str]:
        from rq import Queue  # noqa: PLC0415

        from peers.rq_app import noop  # noqa: PLC0415

        queue = Queue("default", connection=redis.Redis.from_url(self.redis_url))
        ids: list[str] = []
        for start in range(0, m, 500):  # enqueue_many pipelines a batch into one round trip
            batch = [Queue.prepare_data(noop) for _ in range(start, min(m, start + 500))]
            ids += [job.id for job in queue.enqueue_many(batch)]
        return ids

    def probe(self, pipe: Any, job: str) -> None:
        pipe.hget(f"rq:job:{job}", "status")

    def done(self, reply: Any) -> bool:
        return reply in (b"finished", b"failed")

    def good(self, r: redis.Redis, jobs: list[str]) -> int:
        from rq.job import Job  # noqa: PLC0415

        fetched = Job.fetch_many(jobs, connection=r)
        return sum(job is not None and is_echo(job.return_value()) for job in fetched)


class Dramatiq:
    name = "dramatiq"

    def setup(self) -> None:
        pass

    def worker_cmds(self, n: int) -> list[list[str]]:
        # Dramatiq's own model: one command forking n worker processes of 8 threads each
        # (its default); threads let a process overlap several HTTP calls.
        return [[PY, "-m", "dramatiq", "peers.dramatiq_app", "--processes", str(n)]]

    def ready(self, r: redis.Redis, n: int) -> bool:
        return _ready_count(r, n)

    def enqueue(self, m: int) -> list[str]:
        from peers.dramatiq_app import noop, results  # noqa: PLC0415

        return _threaded(m, lambda i: results.build_message_key(noop.send()))

    def probe(self, pipe: Any, job: str) -> None:
        pipe.exists(job)

    def done(self, reply: Any) -> bool:
        return bool(reply)

    def good(self, r: redis.Redis, jobs: list[str]) -> int:
        pipe = r.pipeline(transaction=False)
        for job in jobs:
            pipe.lindex(job, 0)
        return sum(bool(b) and is_echo(json.loads(b)) for b in pipe.execute())


def make(name: str, redis_url: str, sim_port: int, tmp: pathlib.Path) -> Any:
    return {
        "trimtab": lambda: Trimtab(redis_url, sim_port, tmp),
        "arq": lambda: Arq(redis_url),
        "celery": Celery,
        "rq": lambda: Rq(redis_url),
        "dramatiq": Dramatiq,
    }[name]()
