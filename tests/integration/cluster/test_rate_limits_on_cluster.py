"""tests/integration/test_rate_limits.py on Redis Cluster (conftest.py says how)."""

from tests.integration.test_rate_limits import *  # noqa: F403
