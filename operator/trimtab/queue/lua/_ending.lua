-- Prepended by trimtab.queue.scripts to every script, after _admission.lua.
--
-- How a run fails or is cancelled, in one place for every script that ends one so
-- (fail, reject, timeout, cancel): once, leaving its admission places, counted and announced; and then its
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
  enqueue(last.stream, last.message)
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
  if given_up(run_key)
      and not redis.call('HGET', run_key, RUN_FIELD.undoing) then
    next_undo(run_key, events_key)
  end
end

-- The run has ended `status`: its entry on the namespace's outbox, for the operator
-- (trimtab.queue.ended), written with the ending itself so no ended run is missed.
local function note_ended(ended_key, run_key, status, now)
  redis.call('XADD', ended_key, 'MAXLEN', '~', ENDED_MAX, '*', ENDED.run_key, run_key,
    ENDED.status, status, ENDED.at_ms, now)
end

-- The run gives up now, `status` failed or cancelled (the caller checked it had not
-- ended already), and starts undoing: a cancelled run's completed work is compensated
-- like a failed one's, since nobody will use it.
local function give_up_run(run_key, events_key, stats_key, ended_key, now, status, counter)
  redis.call('HSET', run_key, RUN_FIELD.status, status, RUN_FIELD.ended_ms, now)
  note_ended(ended_key, run_key, status, now)
  leave_admission(run_key, now)
  redis.call('HINCRBY', stats_key, counter, 1)
  redis.call('XADD', events_key, '*', 'type', EVENT.run_done, 'status', status, 'at', now)
  next_undo(run_key, events_key)
end

local function fail_run(run_key, events_key, stats_key, ended_key, now)
  give_up_run(run_key, events_key, stats_key, ended_key, now, RUN.failed, WF_STAT.failed)
end

-- Cancel every step of the run not yet finished, wherever it is (queued, running, in
-- its backoff, in review), so any delivery of it later is acknowledged and dropped
-- (_common.lua), no worker starts it (start.lua) and a running one's result is
-- discarded. A step in review leaves the review stream; its spend stands.
local function cancel_unfinished(run_key, stats_key, reviews)
  local flat = redis.call('HGETALL', run_key)
  for j = 1, #flat, 2 do
    local step = step_of_field(flat[j], STEP_FIELD.state)
    local state = flat[j + 1]
    if step and not has_ended(state) then
      local p = step_prefix(step)
      redis.call('HSET', run_key, p .. STEP_FIELD.state, STEP.cancelled)
      if state == STEP.review then
        book_review_hold(run_key, p, stats_key)
        redis.call('HINCRBY', stats_key, WF_STAT.in_review, -1)
        local entry = redis.call('HGET', run_key, p .. STEP_FIELD.review)
        if entry then redis.call('XDEL', reviews, entry) end
      else
        release_hold(run_key, p)
      end
    end
  end
  redis.call('HSET', run_key, RUN_FIELD.in_review, 0)
end
