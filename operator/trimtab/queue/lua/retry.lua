-- Schedule the next attempt of a failed step after its backoff: the delayed set holds
-- it until due, the current delivery is acknowledged, all at once. In a run that has
-- failed meanwhile (another branch died) no retry is scheduled: the step is cancelled
-- ('cancelled'), and resume.lua queues it again with the rest.
-- KEYS: run, events, own stream, delayed zset
-- ARGV: step, attempt, msg_id, group, fence, due_ms, error, now_ms, the next attempt's task
--       message (its field/value pairs as a JSON array, enqueued at due_ms)
local run_key, events_key, stream, delayed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local step, attempt, msg_id, group, fence = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local p = step_prefix(step)
local stale, state = ack_if_stale(run_key, step, attempt, fence, stream, group, msg_id)
if stale then return REPLY.duplicate end
release_hold(run_key, p)
log_attempt(run_key, p, attempt, ATTEMPT.retry, ARGV[8], ARGV[7])
if given_up(run_key) then
  redis.call('HSET', run_key, p .. STEP_FIELD.state, STEP.cancelled, p .. STEP_FIELD.error, ARGV[7])
  redis.call('XACK', stream, group, msg_id)
  return REPLY.cancelled
end
redis.call('HSET', run_key, p .. STEP_FIELD.state, STEP.retrying, p .. STEP_FIELD.attempt, tonumber(attempt) + 1,
  p .. STEP_FIELD.deliveries, 0, p .. STEP_FIELD.interrupted, 0, p .. STEP_FIELD.error, ARGV[7])
redis.call('ZADD', delayed, ARGV[6], ARGV[9])
redis.call('XACK', stream, group, msg_id)
redis.call('XADD', events_key, '*', 'type', EVENT.step_retry, 'step', step, 'attempt', attempt,
  'error', ARGV[7], 'at', ARGV[8])
return REPLY.scheduled
