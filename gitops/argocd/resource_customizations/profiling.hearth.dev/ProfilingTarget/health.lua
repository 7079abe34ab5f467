-- Argo CD health of a ProfilingTarget (profiling.hearth.dev), from the kstatus conditions hearth-operator writes:
-- Ready is Unknown while work is in progress, True once profiles flow, False on a definite failure; Stalled is
-- True when only a change to the target can help. Lua 5.1 as Argo CD runs it (gopher-lua), and 5.4.
local hs = {}

local function condition(conditionType)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local function describe(c)
  if c.message ~= nil and c.message ~= "" then
    return c.reason .. ": " .. c.message
  end
  return c.reason
end

local generation = obj.metadata.generation

if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Waiting for hearth-operator to remove the target from the agent configuration"
  return hs
end

if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for hearth-operator to report a status"
  return hs
end

local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = string.format("Waiting for hearth-operator to observe generation %d", generation)
  return hs
end

local ready = condition("Ready")
if ready == nil or (generation ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for hearth-operator to set the Ready condition"
  return hs
end

local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
elseif ready.status == "False" and ready.reason == "Suspended" then
  hs.status = "Suspended"
elseif ready.status == "False" then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = describe(ready)
return hs
