-- Move a failing step to its fallback pool: the next attempt goes straight onto the
-- fallback pool's stream and the current delivery is acknowledged, all at once.
-- KEYS: run, events, own stream, fallback stream
-- ARGV: step, attempt, msg_id, group, fence, fallback pool, reason, now_ms, then the next
--       message's field/value pairs
local run_key, events_key, stream, target = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local step, attempt, msg_id, group, fence = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local p = step_prefix(step)
local stale, state = ack_if_stale(run_key, step, attempt, fence, stream, group, msg_id)
if stale then return REPLY.duplicate end
release_hold(run_key, p)
log_attempt(run_key, p, attempt, ATTEMPT.escalated, ARGV[8], ARGV[7])
redis.call('HSET', run_key, p .. STEP_FIELD.state, STEP.queued, p .. STEP_FIELD.attempt, tonumber(attempt) + 1,
  p .. STEP_FIELD.deliveries, 0, p .. STEP_FIELD.interrupted, 0, p .. STEP_FIELD.pool, ARGV[6], p .. STEP_FIELD.error, ARGV[7], p .. STEP_FIELD.queued_ms, ARGV[8])
local fields = {}
for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
enqueue(target, fields)
redis.call('XACK', stream, group, msg_id)
redis.call('XADD', events_key, '*', 'type', EVENT.step_escalated, 'step', step, 'pool', ARGV[6],
  'reason', ARGV[7], 'at', ARGV[8])
return REPLY.escalated
