"""tests/integration/test_redelivery.py on Redis Cluster (conftest.py says how)."""

from tests.integration.test_redelivery import *  # noqa: F403
