"""tests/integration/test_tool_calls.py on Redis Cluster (conftest.py says how)."""

from tests.integration.test_tool_calls import *  # noqa: F403
