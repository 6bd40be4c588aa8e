"""tests/integration/test_runtime.py on Redis Cluster (conftest.py says how)."""

from tests.integration.test_runtime import *  # noqa: F403
