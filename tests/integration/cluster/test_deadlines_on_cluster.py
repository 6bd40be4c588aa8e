"""tests/integration/test_deadlines.py on Redis Cluster (conftest.py says how)."""

from tests.integration.test_deadlines import *  # noqa: F403
