"""Holding a call's worst case before it goes out: against the step's own tokenBudget,
its run's limits, and the namespace's AgentBudgets that cover its workflow, in one
atomic reservation (trimtab.queue.budgets). The attempt calls only when all of them
have room; otherwise this says how the attempt ends instead.

The namespace's AgentBudget definitions are read at most once a second: a budget an
admin just created or changed binds within about a second, and a worker at full load
adds one hash read a second, not one per call.
"""

from __future__ import annotations

import time

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import agentbudgets, budgets, connection, intake, scripts, wire
from trimtab.reconcile.agentbudget import windows as windows_mod
from trimtab.reconcile.agentworkflow import compile as compile_mod
from trimtab.worker import ending, finish, policy

READ_EVERY_SECONDS = 1.0


class Spending:
    def __init__(
        self, client: connection.Redis, lua: scripts.Scripts, *, namespace: str, pool: str
    ) -> None:
        self.client, self.lua = client, lua
        self.namespace, self.pool = namespace, pool
        self._definitions: dict[str, windows_mod.Definition] = {}
        self._read_at = float("-inf")

    async def windows(self, workflow: str, now: float) -> list[windows_mod.Window]:
        """The AgentBudget windows a call of `workflow` is held on at `now`."""
        if now - self._read_at >= READ_EVERY_SECONDS:
            self._definitions = await agentbudgets.definitions(self.client, self.namespace)
            self._read_at = now
        return windows_mod.covering(self.namespace, workflow, self._definitions, now)

    async def hold(
        self,
        delivery: intake.Delivery,
        step: awf.Step,
        wf: compile_mod.CompiledWorkflow,
        worst: budgets.WorstCase | None,
    ) -> ending.Ending | None:
        """How the attempt ends instead of calling (a budget it would overrun, a wait for
        other calls' holds, a delivery no longer the step's), or None: the call may go
        ahead, its worst case held until the attempt ends."""
        if worst is None:
            return None
        budget = wf.spec.budget
        over = policy.step_shortfall(step, worst)
        if over is not None:
            return ending.budget_exhausted(budget, pool=self.pool, shortfall=over)
        now = time.time()
        limits = policy.run_limits(budget)
        windows = await self.windows(delivery.task.workflow, now)
        if not limits.any and not windows:
            return None
        hold = await budgets.reserve(self.lua, delivery, worst, limits, windows, now=now)
        if hold.outcome is wire.Reply.DUPLICATE:
            # Another delivery started the step since (this worker stalled): the script
            # the ending runs finds the fence replaced and leaves the step to its owner.
            return ending.DeadLetter("superseded: another delivery of this step started")
        if hold.outcome is not wire.Reply.OVER_BUDGET:
            return None
        why = policy.hold_shortfall(hold, worst, limits)
        return (
            ending.budget_held(why, now_ms=finish.now_ms())
            if policy.held_back(hold, worst, limits)  # only other calls' holds keep it out
            else ending.budget_exhausted(budget, pool=self.pool, shortfall=why)
        )
