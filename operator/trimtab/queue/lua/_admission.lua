-- Prepended by trimtab.queue.scripts to every script, after _common.lua.
--
-- Admission under a workflow's concurrencyLimit and its concurrencyKey's limit. A run of
-- such a workflow carries, in RUN_FIELD.admission, its admission table: the workflow's
-- set of admitted run keys and list of runs waiting for a place (`active`, `waiting`,
-- `limit`), and for its key's value the same again (`kactive`, `kwaiting`, `klimit`);
-- either limit may be absent. A run takes its key's place first, then the workflow's:
-- one waiting for its key holds nothing, one waiting for the workflow holds its key's
-- place, so a busy key never keeps other keys' runs waiting. Waiting lists are served
-- oldest first. A run that waits carries its roots' task messages (RUN_FIELD.roots),
-- enqueued once it has every place; its TTL (`ttl`) starts again then, so a long wait
-- does not eat its time to run. The admitted sets are sorted sets scored by when each
-- run's hash expires: a run that expired without ending frees its place at the next
-- check, in O(log n), so a lost run never holds one for ever.

local function has_room(set, limit, now)
  if redis.call('ZCARD', set) >= limit then redis.call('ZREMRANGEBYSCORE', set, '-inf', now) end
  return redis.call('ZCARD', set) < limit
end

local function hold_place(set, a, run_key, now)
  redis.call('ZADD', set, now + a.ttl * 1000, run_key)
end

-- Enqueue an admitted waiting run's roots; its TTL starts again now. It may have come
-- off the workflow's list behind another key's run: its own admission table says its key.
local function start_waiting(run_key, events_key, now)
  local a = cjson.decode(redis.call('HGET', run_key, RUN_FIELD.admission))
  redis.call('HSET', run_key, RUN_FIELD.status, RUN.running)
  for _, root in ipairs(cjson.decode(redis.call('HGET', run_key, RUN_FIELD.roots))) do
    local q = step_prefix(root.step)
    redis.call('HSET', run_key, q .. STEP_FIELD.state, STEP.queued, q .. STEP_FIELD.queued_ms, now)
    enqueue(root.stream, root.message)
  end
  redis.call('HDEL', run_key, RUN_FIELD.roots)
  redis.call('XADD', events_key, '*', 'type', EVENT.admitted, 'at', now)
  redis.call('EXPIRE', run_key, a.ttl)
  redis.call('EXPIRE', events_key, a.ttl)
  if a.klimit then hold_place(a.kactive, a, run_key, now) end
end

-- Whether a run that holds its key's place (if any) got the workflow's.
local function take_workflow_place(a, run_key, now)
  if not a.limit then return true end
  if not has_room(a.active, a.limit, now) then return false end
  hold_place(a.active, a, run_key, now)
  return true
end

-- The oldest run on `list` still waiting, and its entry; entries of runs that ended
-- or expired while they waited are dropped. nil when none is left.
local function pop_waiting(list)
  while true do
    local entry = redis.call('LPOP', list)
    if not entry then return nil end
    local w = cjson.decode(entry)
    if redis.call('HGET', w.run, RUN_FIELD.status) == RUN.waiting then return w, entry end
  end
end

-- Admit the workflow's waiting runs while it has room (they hold their keys' places).
local function drain_workflow(a, now)
  if not a.limit then return end
  while has_room(a.active, a.limit, now) do
    local w = pop_waiting(a.waiting)
    if not w then return end
    hold_place(a.active, a, w.run, now)
    start_waiting(w.run, w.events, now)
  end
end

-- Give the key's free places to its waiting runs; each then takes the workflow's place
-- or joins the workflow's waiting list.
local function drain_key(a, now)
  if not a.klimit then return end
  while has_room(a.kactive, a.klimit, now) do
    local w, entry = pop_waiting(a.kwaiting)
    if not w then return end
    hold_place(a.kactive, a, w.run, now)
    if take_workflow_place(a, w.run, now) then
      start_waiting(w.run, w.events, now)
    else
      redis.call('RPUSH', a.waiting, entry)
    end
  end
end

-- The list a new run must wait in, or nil once it has its places. Runs already
-- waiting go first.
local function admit_new(a, run_key, now)
  drain_workflow(a, now)
  if a.klimit then
    drain_key(a, now)
    if not has_room(a.kactive, a.klimit, now) then return a.kwaiting end
    hold_place(a.kactive, a, run_key, now)
  end
  if take_workflow_place(a, run_key, now) then return nil end
  return a.waiting
end

-- The run has ended (succeeded, failed, timed out): its places go to those waiting.
local function leave_admission(run_key, now)
  local admission = redis.call('HGET', run_key, RUN_FIELD.admission)
  if not admission then return end
  local a = cjson.decode(admission)
  if a.limit then redis.call('ZREM', a.active, run_key) end
  if a.klimit then redis.call('ZREM', a.kactive, run_key) end
  drain_workflow(a, now)
  drain_key(a, now)
end

-- A person resumed the run: it takes its places again, even past the limits.
local function rejoin_admission(run_key, now)
  local admission = redis.call('HGET', run_key, RUN_FIELD.admission)
  if not admission then return end
  local a = cjson.decode(admission)
  if a.limit then hold_place(a.active, a, run_key, now) end
  if a.klimit then hold_place(a.kactive, a, run_key, now) end
end
