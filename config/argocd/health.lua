-- Argo CD health of ImageSetConfiguration and DeleteImageSetConfiguration
-- (mirror.openshift.io), read from the conditions imageset-operator writes. One script for
-- both kinds; argocd-cm.yaml beside it installs it.
--   Progressing  the operator has not reported on this generation yet, or a run, plan or
--                deletion of it is under way
--   Degraded     it cannot progress without a change (Stalled), or the last run failed
--                (Degraded; it is retried)
--   Suspended    waiting for a person: held cluster-object changes (ChangesHeld), or a
--                delete plan awaiting approval
--   Healthy      mirrored (also while a resync of what is mirrored runs), or deleted
local function condition(type)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function holds(c)
  return c ~= nil and c.status == "True"
end

local function says(c)
  return (c.reason or "") .. ": " .. (c.message or "")
end

local hs = {}
local generation = obj.metadata.generation
if obj.status == nil or obj.status.observedGeneration == nil
    or (generation ~= nil and obj.status.observedGeneration ~= generation) then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to take generation " .. tostring(generation)
  return hs
end

local ready = condition("Ready")
local stalled = condition("Stalled")
local reconciling = condition("Reconciling")
local degraded = condition("Degraded")
local held = condition("ChangesHeld")

-- A resync of a generation already mirrored changes nothing here: what it asked for is in
-- place while the run looks for changes at the sources.
local resync = holds(reconciling) and holds(ready) and ready.observedGeneration == generation
if holds(stalled) then
  hs.status = "Degraded"
  hs.message = says(stalled)
elseif holds(reconciling) and not resync then
  hs.status = "Progressing"
  hs.message = says(reconciling)
elseif holds(degraded) then
  hs.status = "Degraded"
  hs.message = says(degraded)
elseif holds(held) then
  hs.status = "Suspended"
  hs.message = says(held)
elseif ready ~= nil and ready.status == "False" and ready.reason == "AwaitingApproval" then
  hs.status = "Suspended"
  hs.message = says(ready)
elseif holds(ready) then
  hs.status = "Healthy"
  hs.message = says(ready)
else
  hs.status = "Progressing"
  if ready ~= nil then
    hs.message = says(ready)
  else
    hs.message = "waiting for the operator"
  end
end
if resync then
  hs.message = hs.message .. " (" .. says(reconciling) .. ")"
end
return hs
