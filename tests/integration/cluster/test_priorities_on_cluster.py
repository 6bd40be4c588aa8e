"""tests/integration/test_priorities.py on Redis Cluster (conftest.py says how)."""

from tests.integration.test_priorities import *  # noqa: F403
