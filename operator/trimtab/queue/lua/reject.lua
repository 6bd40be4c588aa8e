-- A reviewer rejects a step in review: the step and its run fail (no dead letter: a
-- person decided), and the review entry is removed, all at once.
-- KEYS: run, events, review stream, workflow stats, ended-runs outbox
-- ARGV: step, attempt, review id, reason, now_ms
local run_key, events_key, reviews = KEYS[1], KEYS[2], KEYS[3]
local step, attempt, reason, now = ARGV[1], ARGV[2], ARGV[4], ARGV[5]
local p = step_prefix(step)
if redis.call('HGET', run_key, p .. STEP_FIELD.state) ~= STEP.review
    or redis.call('HGET', run_key, p .. STEP_FIELD.attempt) ~= attempt then
  redis.call('XDEL', reviews, ARGV[3])
  return REPLY.stale
end
book_review_hold(run_key, p, KEYS[4])
local already = given_up(run_key)
redis.call('HSET', run_key, p .. STEP_FIELD.state, STEP.dead, p .. STEP_FIELD.error, reason, p .. STEP_FIELD.ended_ms, now)
redis.call('HINCRBY', run_key, RUN_FIELD.in_review, -1)
redis.call('HINCRBY', KEYS[4], WF_STAT.in_review, -1)
redis.call('XDEL', reviews, ARGV[3])
redis.call('XADD', events_key, '*', 'type', EVENT.step_rejected, 'step', step, 'reason', reason,
  'at', now)
if not already then fail_run(run_key, events_key, KEYS[4], KEYS[5], now) end  -- a run fails once
return REPLY.rejected
