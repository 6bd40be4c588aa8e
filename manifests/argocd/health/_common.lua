-- The start of every trimtab.io health check, prepended to each by hack/generate.py
-- (Argo CD runs each check alone, with no shared module): no status yet or an older
-- generation is Progressing, SpecValid=False is Degraded. `status`, `condition` and
-- `ready_health` are left for the check that follows.
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
-- The health once nothing is wrong: Healthy when Ready=True, else Progressing with
-- Ready's message, or `waiting` when there is none.
local function ready_health(ready, waiting)
  if ready ~= nil and ready.status == "True" then
    hs.status = "Healthy"
    hs.message = ready.message or ""
  else
    hs.status = "Progressing"
    hs.message = (ready and ready.message) or waiting
  end
  return hs
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
