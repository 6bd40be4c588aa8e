"""The namespace users' ACL rules, as pure values: what they allow is checked against a
real redis-server in tests/integration/test_namespace_users.py."""

from __future__ import annotations

import pytest

from trimtab.queue import acl, keys


def test_a_namespace_user_may_touch_only_its_namespaces_keys() -> None:
    rules = acl.rules("team-a")
    assert [r for r in rules if r.startswith("~")] == ["~tt:{team-a}:*"]
    assert keys.run("team-a", "r1").startswith(acl.key_pattern("team-a").removesuffix("*"))
    assert not keys.run("team-b", "r1").startswith(acl.key_pattern("team-a").removesuffix("*"))
    assert rules[0] == "resetchannels"  # no Pub/Sub channel either


def test_denials_come_after_the_categories_they_narrow() -> None:
    # Redis applies rules in order: a later +@read would re-allow SCAN.
    rules = acl.rules("team-a")
    assert rules.index("-scan") > max(i for i, r in enumerate(rules) if r.startswith("+@"))
    assert rules.index("+info") > rules.index("-@dangerous")  # which holds INFO


@pytest.mark.parametrize("bad", ["", "Team", "a*", "a:b", "x" * 64, "-a", "a b"])
def test_a_name_that_is_not_a_namespace_is_refused(bad: str) -> None:
    with pytest.raises(acl.BadNamespaceError, match="not a Kubernetes namespace"):
        acl.rules(bad)
    with pytest.raises(acl.BadNamespaceError):
        acl.user(bad)


def test_the_user_is_named_after_the_namespace() -> None:
    assert acl.user("team-a") == "tt-team-a"
