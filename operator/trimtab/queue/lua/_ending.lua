-- Prepended by trimtab.queue.scripts to every script, after _admission.lua.
--
-- How a run fails, in one place for every script that fails one (fail, reject,
-- timeout): once, leaving its admission places, counted and announced; and then its
-- compensations (a saga) begin. RUN_FIELD.undo lists the completed steps that declared
-- `compensate`, in order of completion, each with the stream and task message of its
-- compensation (trimtab.queue.tasks built them at completion). They run one at a time,
-- last completed first: RUN_FIELD.undoing names the one out, and undo.lua, when it
-- ends, sends the next. Each one sent gives the run and its events their whole TTL
-- again, so a run that fails late in its life, or waits for a pool to scale up, is
-- still there to be undone.

-- Send the last pending compensation, if any; false when none is left.
local function next_undo(run_key, events_key)
  local pending = cjson.decode(redis.call('HGET', run_key, RUN_FIELD.undo) or '[]')
  local last = table.remove(pending)
  if not last then
    redis.call('HDEL', run_key, RUN_FIELD.undoing)
    return false
  end
  redis.call('XADD', last.stream, '*', unpack(last.message))
  redis.call('HSET', run_key, RUN_FIELD.undo, cjson.encode(pending), RUN_FIELD.undoing, last.step,
    RUN_FIELD.undone, 1)
  local ttl = tonumber(redis.call('HGET', run_key, RUN_FIELD.ttl))
  if ttl then
    redis.call('EXPIRE', run_key, ttl)
    redis.call('EXPIRE', events_key, ttl)
  end
  return true
end

-- Append a step that completed with a compensation; when its run has failed already
-- and nothing is being undone, it is undone at once.
local function add_undo(run_key, events_key, step, stream, message)
  local pending = cjson.decode(redis.call('HGET', run_key, RUN_FIELD.undo) or '[]')
  pending[#pending + 1] = {step = step, stream = stream, message = message}
  redis.call('HSET', run_key, RUN_FIELD.undo, cjson.encode(pending))
  if redis.call('HGET', run_key, RUN_FIELD.status) == RUN.failed
      and not redis.call('HGET', run_key, RUN_FIELD.undoing) then
    next_undo(run_key, events_key)
  end
end

-- The run fails now (the caller checked it had not already), and starts undoing.
local function fail_run(run_key, events_key, stats_key, now)
  redis.call('HSET', run_key, RUN_FIELD.status, RUN.failed, RUN_FIELD.ended_ms, now)
  leave_admission(run_key, now)
  redis.call('HINCRBY', stats_key, WF_STAT.failed, 1)
  redis.call('XADD', events_key, '*', 'type', EVENT.run_done, 'status', RUN.failed, 'at', now)
  next_undo(run_key, events_key)
end
