"""tests/integration/test_agentbudgets.py on Redis Cluster (conftest.py says how)."""

from tests.integration.test_agentbudgets import *  # noqa: F403
