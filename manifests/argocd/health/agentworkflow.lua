-- Argo CD health of a trimtab.io AgentWorkflow.
-- Healthy: Ready=True for the current generation. Degraded: SpecValid=False (a cycle,
-- a missing pool...). Progressing otherwise (waiting for its pools, reconciling).
local hs = {}
local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator"
  return hs
end
local function condition(kind)
  for _, c in ipairs(status.conditions) do
    if c.type == kind then return c end
  end
  return nil
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Reconciling generation " .. tostring(generation)
  return hs
end
local spec = condition("SpecValid")
if spec ~= nil and spec.status == "False" then
  hs.status = "Degraded"
  hs.message = spec.message or "The spec is invalid"
  return hs
end
local ready = condition("Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end
hs.status = "Progressing"
hs.message = (ready and ready.message) or "Waiting for its pools"
return hs
