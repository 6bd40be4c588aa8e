-- End a failed run's compensation of one step: record how it went, acknowledge the
-- delivery and send the next compensation (_ending.lua), all at once. A delivery that is
-- not the compensation out (a redelivery of one that ended, or of an expired run's) is
-- only acknowledged.
-- KEYS: run, events, own stream
-- ARGV: step, msg_id, group, outcome (UNDO), error ('' for none), now_ms
local run_key, events_key, stream = KEYS[1], KEYS[2], KEYS[3]
local step, msg_id, group, outcome, err, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
redis.call('XACK', stream, group, msg_id)
if redis.call('HGET', run_key, RUN_FIELD.undoing) ~= step then return REPLY.duplicate end
local p = step_prefix(step)
redis.call('HSET', run_key, p .. STEP_FIELD.undo, outcome)
if err ~= '' then redis.call('HSET', run_key, p .. STEP_FIELD.undo_error, err) end
redis.call('XADD', events_key, '*', 'type', EVENT.step_compensated, 'step', step,
  'status', outcome, 'at', now)
if not next_undo(run_key) then
  redis.call('XADD', events_key, '*', 'type', EVENT.run_compensated, 'at', now)
end
return REPLY.compensated
