"""tests/integration/test_compensation.py on Redis Cluster (conftest.py says how)."""

from tests.integration.test_compensation import *  # noqa: F403
