"""tests/integration/test_guardrails.py on Redis Cluster (conftest.py says how)."""

from tests.integration.test_guardrails import *  # noqa: F403
