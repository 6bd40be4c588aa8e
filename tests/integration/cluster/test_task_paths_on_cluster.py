"""tests/integration/test_task_paths.py on Redis Cluster (conftest.py says how)."""

from tests.integration.test_task_paths import *  # noqa: F403
