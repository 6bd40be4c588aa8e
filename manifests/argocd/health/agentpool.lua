-- Argo CD health of a trimtab.io AgentPool.
-- Healthy: Ready=True for the current generation. Progressing: waiting for the operator,
-- reconciling a new generation, or scaling. Degraded: an invalid spec, the endpoint's
-- circuit breaker open, or spot fallback that still cannot schedule the pool.
-- Runs after _common.lua, which hack/generate.py puts before it.
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
return ready_health(ready, "Scaling")
