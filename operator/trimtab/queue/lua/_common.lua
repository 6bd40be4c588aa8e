-- Prepended by trimtab.queue.scripts to every script, after _wire.lua.

-- A step that has ended for good (done, dead, cancelled): nothing starts or moves it.
local function has_ended(state)
  return state == STEP.done or state == STEP.dead or state == STEP.cancelled
end

-- A delivery of `attempt` is out of date when its run is gone (no state), its step has
-- ended, or the step has moved on to another attempt.
local function outdated(run_key, step, state, attempt)
  return (not state) or has_ended(state)
    or redis.call('HGET', run_key, step_prefix(step) .. STEP_FIELD.attempt) ~= attempt
end

-- A delivery is stale when its step is gone (run expired), done or dead, or has moved
-- on to another attempt: it is acknowledged and nothing else happens, so no step runs
-- or completes twice. It is also stale when another delivery of the same attempt has
-- started since (`fence`, the token start.lua handed out, is no longer the step's): a
-- worker that stalled past its visibility timeout can no longer act for a step another
-- worker owns; that delivery is not acknowledged, since the message is the owner's now.
-- A fence of '' is a reviewer's, who acts only for a step in review.
-- Returns whether it was stale, and the step's state.
local function ack_if_stale(run_key, step, attempt, fence, stream, group, msg_id)
  local p = step_prefix(step)
  local state = redis.call('HGET', run_key, p .. STEP_FIELD.state)
  if outdated(run_key, step, state, attempt) then
    redis.call('XACK', stream, group, msg_id)
    return true, state
  end
  if fence == '' then return state ~= STEP.review, state end
  if redis.call('HGET', run_key, p .. STEP_FIELD.fence) ~= fence then return true, state end
  return false, state
end

-- The next `n` arguments from position i on, and the position after them: how the
-- scripts take a list the caller built (a task message's field/value pairs).
local function take(args, i, n)
  local out = {}
  for k = i, i + n - 1 do out[#out + 1] = args[k] end
  return out, i + n
end


-- Give back what the step's attempt held against its run's budget (reserve.lua): every
-- script that ends or hands back an attempt calls it, so a hold lasts only while the
-- attempt may still spend. A redelivery's reserve replaces a dead worker's hold.
local function release_hold(run_key, p)
  local tokens = redis.call('HGET', run_key, p .. STEP_FIELD.held_tokens)
  if not tokens then return end
  local cost = redis.call('HGET', run_key, p .. STEP_FIELD.held_cost) or '0'
  redis.call('HINCRBY', run_key, RUN_FIELD.held_tokens, -tonumber(tokens))
  redis.call('HINCRBYFLOAT', run_key, RUN_FIELD.held_cost, -tonumber(cost))
  redis.call('HDEL', run_key, p .. STEP_FIELD.held_tokens, p .. STEP_FIELD.held_cost)
end

-- Admission under a workflow's concurrencyLimit. A run of such a workflow carries, in
-- RUN_FIELD.admission, its workflow's set of admitted run keys, its list of waiting
-- runs (oldest first) and the limit; a waiting run carries its roots' task messages.
-- Admitting a run makes it running and enqueues its roots. An admitted run whose hash
-- is gone (expired) or has ended frees its place when the set is full, so a lost run
-- can never hold one forever.
local function admit(entry, now)
  local w = cjson.decode(entry)
  if redis.call('HGET', w.run, RUN_FIELD.status) ~= RUN.waiting then return false end
  local a = cjson.decode(redis.call('HGET', w.run, RUN_FIELD.admission))
  redis.call('SADD', a.active, w.run)
  redis.call('HSET', w.run, RUN_FIELD.status, RUN.running)
  for _, root in ipairs(cjson.decode(redis.call('HGET', w.run, RUN_FIELD.roots))) do
    local q = step_prefix(root.step)
    redis.call('HSET', w.run, q .. STEP_FIELD.state, STEP.queued, q .. STEP_FIELD.queued_ms, now)
    redis.call('XADD', root.stream, '*', unpack(root.message))
  end
  redis.call('HDEL', w.run, RUN_FIELD.roots)
  redis.call('XADD', w.events, '*', 'type', EVENT.admitted, 'at', now)
  return true
end

local function prune_admitted(active)
  for _, key in ipairs(redis.call('SMEMBERS', active)) do
    local status = redis.call('HGET', key, RUN_FIELD.status)
    if status ~= RUN.running and status ~= RUN.review then redis.call('SREM', active, key) end
  end
end

-- Admit waiting runs, oldest first, while the workflow has room.
local function admit_waiting(a, now)
  if redis.call('SCARD', a.active) >= a.limit then prune_admitted(a.active) end
  while redis.call('SCARD', a.active) < a.limit do
    local entry = redis.call('LPOP', a.waiting)
    if not entry then return end
    admit(entry, now)
  end
end

-- The run has ended (succeeded, failed, timed out): its place goes to the next waiting.
local function leave_admission(run_key, now)
  local admission = redis.call('HGET', run_key, RUN_FIELD.admission)
  if not admission then return end
  local a = cjson.decode(admission)
  redis.call('SREM', a.active, run_key)
  admit_waiting(a, now)
end
