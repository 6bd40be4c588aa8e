"""tests/integration/test_cancel_and_list.py on Redis Cluster (conftest.py says how)."""

from tests.integration.test_cancel_and_list import *  # noqa: F403
