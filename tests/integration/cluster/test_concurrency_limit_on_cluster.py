"""tests/integration/test_concurrency_limit.py on Redis Cluster (conftest.py says how)."""

from tests.integration.test_concurrency_limit import *  # noqa: F403
