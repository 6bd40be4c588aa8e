"""Submitting runs and awaiting their results: the Python API under the CLI and gateway.

from trimtab.sdk import Client
client = Client("redis://127.0.0.1:6379/0")
run = await client.submit("support", "customer-support", {"message": "..."})
result = await client.result(run, timeout=30)
"""

from trimtab.sdk.client import Client, RunResult
from trimtab.sdk.sync import SyncClient

__all__ = ["Client", "RunResult", "SyncClient"]
