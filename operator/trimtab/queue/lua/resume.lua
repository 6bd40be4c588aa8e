-- Retry a dead-lettered step: its run is running again, the step's next attempt goes
-- onto its pool's stream, and the dead-letter entry is removed, all at once.
-- KEYS: run, events, pool stream, dead-letter stream, workflow stats
-- ARGV: step, dead-letter id, now_ms, the next attempt's number (the dead attempt + 1),
--       then its task message's field/value pairs
local run_key, events_key, stream, dlq = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local step, entry, now = ARGV[1], ARGV[2], ARGV[3]
local p = step_prefix(step)
if redis.call('EXISTS', run_key) == 0 then return REPLY.gone end
if redis.call('HGET', run_key, p .. STEP_FIELD.state) ~= STEP.dead then return REPLY.not_dead end
local attempt = ARGV[4]
local fields = take(ARGV, 5, #ARGV - 4)
if tonumber(attempt) ~= tonumber(redis.call('HGET', run_key, p .. STEP_FIELD.attempt)) + 1 then
  return REPLY.stale
end
redis.call('HSET', run_key, p .. STEP_FIELD.state, STEP.queued, p .. STEP_FIELD.attempt, attempt, p .. STEP_FIELD.deliveries, 0,
  p .. STEP_FIELD.queued_ms, now, RUN_FIELD.status, RUN.running)
redis.call('HDEL', run_key, RUN_FIELD.ended_ms, p .. STEP_FIELD.ended_ms)
redis.call('HINCRBY', KEYS[5], 'failed', -1)
redis.call('XADD', stream, '*', unpack(fields))
redis.call('XDEL', dlq, entry)
redis.call('XADD', events_key, '*', 'type', EVENT.step_resumed, 'step', step, 'at', now)
return REPLY.resumed
