"""Every key of one namespace hashes to one Redis Cluster slot, so every script (which
touches a run, pools' streams, its workflow's keys and budgets) runs on one shard."""

from __future__ import annotations

import inspect

import pytest
from redis.crc import key_slot

from trimtab.queue import keys, wire

pytestmark = pytest.mark.unit


def _every_key(namespace: str) -> list[str]:
    """One key of each kind the module names for a namespace."""
    samples = {"pool": "p", "run_id": "r", "name": "wf", "workflow": "wf", "key": "k",
               "session": "s", "digest": "d", "budget": "b", "period": "day", "start": 0,
               "second": 1, "hour": 3600, "generation": 1, "endpoint": "model", "value": "v",
               "priority": wire.Priority.HIGH}  # fmt: skip
    found = []
    for name, fn in inspect.getmembers(keys, inspect.isfunction):
        params = list(inspect.signature(fn).parameters)
        if (
            not params
            or params[0] != "namespace"
            or name in ("_ns", "hash_tag", "namespace_prefix")
        ):
            continue
        value = fn(namespace, *(samples[p] for p in params[1:] if p in samples))
        found += value if isinstance(value, list) else [value]
    return found


def test_a_namespaces_keys_share_one_slot_and_another_namespace_may_not() -> None:
    team_a = _every_key("team-a")
    assert len(team_a) > 25, "every kind of key was built"
    assert {key_slot(k.encode()) for k in team_a} == {key_slot(b"team-a")}
    assert all(k.startswith(keys.namespace_prefix("team-a")) for k in team_a)
    team_b = {key_slot(k.encode()) for k in _every_key("team-b")}
    assert len(team_b) == 1
    assert keys.run_id_of(keys.run("team-a", "r1")) == "r1"
