"""Thin kopf wiring: each handler gathers observed state, calls a pure decision from
trimtab.reconcile, and applies the result through trimtab.kube and trimtab.queue.

Importing this package registers every handler with kopf.
"""

# lifecycle first: its start-up handler creates the shared state the loops need. views
# next: kopf runs an object's watch handlers in the order they were registered, and the
# others read the views these keep.
from trimtab.handlers import lifecycle  # isort: skip
from trimtab.handlers import views  # isort: skip
from trimtab.handlers import agentbudget, agentpool, agentworkflow, loops

__all__ = ["agentbudget", "agentpool", "agentworkflow", "lifecycle", "loops", "views"]
