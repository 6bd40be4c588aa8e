"""Every Redis key name Trimtab uses, in one place, namespaced by Kubernetes namespace.

A namespace's keys all start with `tt:{NAMESPACE}:`, the braces included: the name in
braces is their Redis Cluster hash tag, so every key of one namespace lives in one hash
slot. That is what lets every script (which touches a run, its events, several pools'
streams, its workflow's counters and budgets, all of one namespace) run on Redis
Cluster, atomically, with no cross-slot hop; the cost is that one namespace is served
by one shard, and the data plane grows across shards by namespaces (tenants, teams),
not within one. On a single Redis or Sentinel the braces are just characters.
The one key outside every namespace, the workflow index, lives in its own slot and
is written beside, never inside, a namespace's atomic steps.

Layout (`tt:` prefix, `{ns}` a Kubernetes namespace, braces and all):
    tt:{ns}:pool:{pool}:stream        pool's task stream of Normal runs; consumer group GROUP
    tt:{ns}:pool:{pool}:stream:{pri}  the same for High and Low runs ({pri}: high, low)
    tt:{ns}:pool:{pool}:delayed       retries waiting for their backoff (zset, score = due ms)
    tt:{ns}:pool:{pool}:delayed:{pri}
    tt:{ns}:pool:{pool}:stats:{sec}   per-second arrivals, completions, latency sketches (hash)
    tt:{ns}:pool:{pool}:breaker:{ep}  circuit breaker of one endpoint ("model", "tool:URL")
    tt:{ns}:pool:{pool}:rate          the model endpoint's rate-limit buckets (hash)
    tt:{ns}:pool:{pool}:arrivals:{hour}  arrivals per second of one hour (hash, TTL 8 days)
    tt:{ns}:run:{run}                 run record and per-step state (hash, TTL)
    tt:{ns}:run:{run}:events          step and run events, for waiters (stream, TTL)
    tt:{ns}:idem:{key}                idempotency key -> run id (TTL)
    tt:{ns}:runs                      every run, newest last (zset, score = created ms)
    tt:workflows                      every published workflow, as "ns/name" (set)
    tt:{ns}:wf:{name}:current         current generation of a published workflow
    tt:{ns}:wf:{name}:gen:{gen}       compiled workflow of one generation (JSON)
    tt:{ns}:wf:{name}:stats           run counters: started, succeeded, failed, tokens, cost
    tt:{ns}:wf:{name}:admitted        run keys under way, under a concurrencyLimit (zset, by expiry)
    tt:{ns}:wf:{name}:waiting         runs waiting for a place, oldest first (list)
    tt:{ns}:wf:{name}:key:{digest}:admitted  the same per concurrencyKey value
    tt:{ns}:wf:{name}:key:{digest}:waiting
    tt:{ns}:wf:{name}:runs:{sec}      per-second run-duration sketches (hash, TTL)
    tt:{ns}:wf:{name}:index           the workflow's runs (zset, score = created ms)
    tt:{ns}:state:{session}           conversation state (TTL)
    tt:{ns}:dlq                       dead-lettered steps (stream)
    tt:{ns}:ended                     runs as they end, for the operator (stream, trimmed)
    tt:{ns}:cache:{digest}            a cached step output (JSON, TTL)
    tt:{ns}:review                    steps waiting for human review (stream)
    tt:{ns}:pools:touched             each pool stream -> ms of its last enqueue (sorted set)
    tt:{ns}:budgets                   AgentBudgets in force: name -> definition (JSON, hash)
    tt:{ns}:budget:{name}:{period}:{start}  one budget window's spend and holds (hash, TTL)
"""

from __future__ import annotations

import hashlib

from trimtab.queue import wire

GROUP = "workers"
PREFIX = "tt"


def _ns(namespace: str) -> str:
    return f"{PREFIX}:{hash_tag(namespace)}"


def hash_tag(namespace: str) -> str:
    """The namespace as its keys' Redis Cluster hash tag."""
    return f"{{{namespace}}}"


def namespace_prefix(namespace: str) -> str:
    """What every key of `namespace` starts with (its ACL users' key pattern)."""
    return f"{_ns(namespace)}:"


def _level(priority: wire.Priority) -> str:
    # Normal keeps the unsuffixed name, which a pool had before it had levels.
    return "" if priority is wire.Priority.NORMAL else f":{priority.value}"


def pool_stream(namespace: str, pool: str, priority: wire.Priority = wire.Priority.NORMAL) -> str:
    """The pool's stream for steps of runs of `priority`."""
    return f"{_ns(namespace)}:pool:{pool}:stream{_level(priority)}"


def pools_touched(namespace: str) -> str:
    """Each pool stream of the namespace, scored by when a script last enqueued on it."""
    return f"{_ns(namespace)}:{wire.NamespaceKey.TOUCHED}"


def pool_streams(namespace: str, pool: str) -> list[str]:
    """Every priority level's stream of the pool, highest first."""
    return [pool_stream(namespace, pool, p) for p in wire.Priority]


def pool_delayed(namespace: str, pool: str, priority: wire.Priority = wire.Priority.NORMAL) -> str:
    """Retries of `priority`'s steps waiting for their backoff, before `pool_stream`."""
    return f"{_ns(namespace)}:pool:{pool}:delayed{_level(priority)}"


def pool_stats(namespace: str, pool: str, second: int) -> str:
    return f"{_ns(namespace)}:pool:{pool}:stats:{second}"


def pool_arrivals(namespace: str, pool: str, hour: int) -> str:
    """`hour` is the hour's first second since the epoch, a multiple of 3600."""
    return f"{_ns(namespace)}:pool:{pool}:arrivals:{hour}"


def pool_breaker(namespace: str, pool: str, endpoint: str) -> str:
    return f"{_ns(namespace)}:pool:{pool}:breaker:{endpoint}"


def pool_rate(namespace: str, pool: str) -> str:
    return f"{_ns(namespace)}:pool:{pool}:rate"


def run(namespace: str, run_id: str) -> str:
    return f"{_ns(namespace)}:run:{run_id}"


def run_id_of(run_key: str) -> str:
    """The run id a run's key (`run`) names."""
    return run_key.split(":run:", 1)[1]


def runs_index(namespace: str) -> str:
    """Sorted set: run id -> its creation (ms); kept by submit.lua, pruned as runs expire
    (trimtab.queue.runindex)."""
    return f"{_ns(namespace)}:runs"


def workflow_runs_index(namespace: str, name: str) -> str:
    """runs_index for one workflow's runs."""
    return f"{_ns(namespace)}:wf:{name}:index"


def budgets(namespace: str) -> str:
    return f"{_ns(namespace)}:budgets"


def budget_window(namespace: str, budget: str, period: str, start: int) -> str:
    """`start` is the window's first second since the epoch (UTC)."""
    return f"{_ns(namespace)}:budget:{budget}:{period}:{start}"


def run_events(namespace: str, run_id: str) -> str:
    return f"{_ns(namespace)}:run:{run_id}:events"


def deadlines(namespace: str) -> str:
    """Sorted set: run id -> when the run must have ended (ms); swept by the operator."""
    return f"{_ns(namespace)}:deadlines"


def idempotency(namespace: str, workflow: str, key: str) -> str:
    """A submission's idempotency key, scoped by its workflow: the same key sent to two
    workflows starts two runs."""
    return f"{_ns(namespace)}:idem:{workflow}:{key}"


def workflow_current(namespace: str, name: str) -> str:
    return f"{_ns(namespace)}:wf:{name}:current"


def workflow_index() -> str:
    return f"{PREFIX}:workflows"


def workflow_generation(namespace: str, name: str, generation: int) -> str:
    return f"{_ns(namespace)}:wf:{name}:gen:{generation}"


def workflow_stats(namespace: str, name: str) -> str:
    return f"{_ns(namespace)}:wf:{name}:stats"


def workflow_admitted(namespace: str, name: str) -> str:
    return f"{_ns(namespace)}:wf:{name}:admitted"


def workflow_waiting(namespace: str, name: str) -> str:
    return f"{_ns(namespace)}:wf:{name}:waiting"


def workflow_key_admitted(namespace: str, name: str, value: str) -> str:
    return f"{_ns(namespace)}:wf:{name}:key:{_digest(value)}:admitted"


def workflow_key_waiting(namespace: str, name: str, value: str) -> str:
    return f"{_ns(namespace)}:wf:{name}:key:{_digest(value)}:waiting"


def _digest(value: str) -> str:
    """A key value as a key-name part: any text, fixed length (a tenant's id may be long)."""
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def workflow_missing_secrets(namespace: str, name: str) -> str:
    """Hash: `<secret>/<key>` -> when a worker last found it missing (ms)."""
    return f"{_ns(namespace)}:wf:{name}:missing-secrets"


def workflow_run_seconds(namespace: str, name: str, second: int) -> str:
    return f"{_ns(namespace)}:wf:{name}:runs:{second}"


def state(namespace: str, session: str) -> str:
    return f"{_ns(namespace)}:state:{session}"


def ended_runs(namespace: str) -> str:
    """The namespace's outbox of ended runs (wire.EndedField entries)."""
    return f"{_ns(namespace)}:ended"


def dead_letter(namespace: str) -> str:
    return f"{_ns(namespace)}:dlq"


def response_cache(namespace: str, digest: str) -> str:
    return f"{_ns(namespace)}:cache:{digest}"


def review(namespace: str) -> str:
    return f"{_ns(namespace)}:review"
