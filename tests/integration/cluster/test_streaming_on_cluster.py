"""tests/integration/test_streaming.py on Redis Cluster (conftest.py says how)."""

from tests.integration.test_streaming import *  # noqa: F403
