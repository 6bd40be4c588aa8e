"""The only Redis I/O in Trimtab: task streams, runs, workflow definitions, state, stats.

Runs are data, not Kubernetes objects. Every transition that must not be torn in half by
a crash (submit a run with its roots; complete a step, acknowledge it and enqueue its
ready dependents; schedule a retry; dead-letter) is one Lua script, so it happens
entirely or not at all. Key names live in `keys`, nowhere else.

Targets a single Redis primary (directly or found through Sentinel) or a Redis Cluster,
optionally waiting for replicas on each write (trimtab.queue.topology). One script
touches a run and several pools' streams: every key of a namespace carries the
namespace as its hash tag (trimtab.queue.keys), so on a cluster they share one slot.
"""
