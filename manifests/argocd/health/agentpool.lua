-- Argo CD health of a trimtab.io AgentPool.
-- Healthy: Ready=True for the current generation. Progressing: waiting for the operator,
-- reconciling a new generation, or scaling. Degraded: an invalid spec, the endpoint's
-- circuit breaker open, or spot fallback that still cannot schedule the pool.
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
if status.breaker == "Open" then
  hs.status = "Degraded"
  hs.message = "The model endpoint's circuit breaker is open"
  return hs
end
local ready = condition("Ready")
local fallback = condition("SpotFallback")
if fallback ~= nil and fallback.status == "True" and (ready == nil or ready.status ~= "True") then
  hs.status = "Degraded"
  hs.message = "Spot capacity is gone and on-demand cannot schedule the pool either"
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end
hs.status = "Progressing"
hs.message = (ready and ready.message) or "Scaling"
return hs
