"""tests/integration/test_agents.py on Redis Cluster (conftest.py says how)."""

from tests.integration.test_agents import *  # noqa: F403
