"""tests/integration/test_sessions.py on Redis Cluster (conftest.py says how)."""

from tests.integration.test_sessions import *  # noqa: F403
