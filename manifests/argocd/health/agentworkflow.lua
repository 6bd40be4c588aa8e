-- Argo CD health of a trimtab.io AgentWorkflow.
-- Healthy: Ready=True for the current generation. Degraded: SpecValid=False (a cycle,
-- a missing pool...). Progressing otherwise (waiting for its pools, reconciling).
-- Runs after _common.lua, which hack/generate.py puts before it.
local ready = condition("Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end
hs.status = "Progressing"
hs.message = (ready and ready.message) or "Waiting for its pools"
return hs
