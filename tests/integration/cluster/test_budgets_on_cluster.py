"""tests/integration/test_budgets.py on Redis Cluster (conftest.py says how)."""

from tests.integration.test_budgets import *  # noqa: F403
