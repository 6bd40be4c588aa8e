"""tests/integration/test_failed_runs.py on Redis Cluster (conftest.py says how)."""

from tests.integration.test_failed_runs import *  # noqa: F403
