"""tests/integration/test_terminal_runs.py on Redis Cluster (conftest.py says how)."""

from tests.integration.test_terminal_runs import *  # noqa: F403
