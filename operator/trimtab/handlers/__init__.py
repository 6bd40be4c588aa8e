"""Thin kopf wiring: each handler gathers observed state, calls a pure decision from
trimtab.reconcile, and applies the result through trimtab.kube and trimtab.queue.

Importing this package registers every handler with kopf.
"""

from trimtab.handlers import agentpool, agentworkflow, lifecycle

__all__ = ["agentpool", "agentworkflow", "lifecycle"]
