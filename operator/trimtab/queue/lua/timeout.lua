-- End a run that reached its deadline while a step waited (on a queue no worker serves,
-- in its backoff, for a reviewer) or ran: the run fails, timed out, and every step not
-- yet finished is cancelled, so any delivery of it later is acknowledged and dropped
-- (_common.lua) and no worker starts it (start.lua). A run that already ended is only
-- taken off the deadline set. Atomic, so a completion cannot slip in between.
-- KEYS: run, events, deadlines, workflow stats, review stream
-- ARGV: run_id, reason, now_ms
-- Returns 'timed-out' or 'gone' (expired, or ended before its deadline).
local run_key, events_key, deadlines = KEYS[1], KEYS[2], KEYS[3]
local run_id, reason, now = ARGV[1], ARGV[2], ARGV[3]
redis.call('ZREM', deadlines, run_id)
local status = redis.call('HGET', run_key, RUN_FIELD.status)
if status ~= RUN.running and status ~= RUN.review and status ~= RUN.waiting then
  return REPLY.gone
end
local flat = redis.call('HGETALL', run_key)
for j = 1, #flat, 2 do
  local step = step_of_field(flat[j], STEP_FIELD.state)
  local state = flat[j + 1]
  if step and not has_ended(state) then
    local p = step_prefix(step)
    redis.call('HSET', run_key, p .. STEP_FIELD.state, STEP.cancelled)
    if state == STEP.review then  -- nobody is to review it any more; its spend stands
      book_review_hold(run_key, p, KEYS[4])
      redis.call('HINCRBY', KEYS[4], WF_STAT.in_review, -1)
      local entry = redis.call('HGET', run_key, p .. STEP_FIELD.review)
      if entry then redis.call('XDEL', KEYS[5], entry) end
    else
      release_hold(run_key, p)
    end
  end
end
redis.call('HSET', run_key, RUN_FIELD.error, reason, RUN_FIELD.in_review, 0)
redis.call('XADD', events_key, '*', 'type', EVENT.run_timed_out, 'reason', reason, 'at', now)
fail_run(run_key, events_key, KEYS[4], now)
return REPLY.timed_out
