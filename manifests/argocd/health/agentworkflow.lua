-- Argo CD health of a trimtab.io AgentWorkflow.
-- Healthy: Ready=True for the current generation. Degraded: SpecValid=False (a cycle,
-- a missing pool...). Progressing otherwise (waiting for its pools, reconciling).
-- Runs after _common.lua, which hack/generate.py puts before it.
return ready_health(condition("Ready"), "Waiting for its pools")
