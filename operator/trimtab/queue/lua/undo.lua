-- A failed run's compensation of one step, as its delivery starts and as it ends.
-- Start: count the delivery (a compensation is at least once, and one that kills its
-- worker each time must end some day: the caller ends it failed past maxDeliveries);
-- answers {'run', deliveries so far}. Finish: record how it went, acknowledge the delivery
-- and send the next compensation (_ending.lua), all at once; answers {'compensated'}.
-- Either way a delivery that is not the compensation out (a redelivery of one that
-- ended, or of an expired run's) is only acknowledged: {'duplicate'}.
-- KEYS: run, events, own stream
-- ARGV: op (UNDO_OP), step, msg_id, group, then to finish: outcome (UNDO), error ('' for
--       none), now_ms
local run_key, events_key, stream = KEYS[1], KEYS[2], KEYS[3]
local op, step, msg_id, group = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('HGET', run_key, RUN_FIELD.undoing) ~= step then
  redis.call('XACK', stream, group, msg_id)
  return {REPLY.duplicate}
end
local p = step_prefix(step)
if op == UNDO_OP.start then
  return {REPLY.run, redis.call('HINCRBY', run_key, p .. STEP_FIELD.undo_deliveries, 1)}
end
local outcome, err, now = ARGV[5], ARGV[6], ARGV[7]
if outcome ~= UNDO.done and outcome ~= UNDO.failed then
  return redis.error_reply('undo.lua: no compensation outcome ' .. outcome)
end
redis.call('XACK', stream, group, msg_id)
redis.call('HSET', run_key, p .. STEP_FIELD.undo, outcome)
if err ~= '' then redis.call('HSET', run_key, p .. STEP_FIELD.undo_error, err) end
redis.call('XADD', events_key, '*', 'type', EVENT.step_compensated, 'step', step,
  'status', outcome, 'at', now)
if not next_undo(run_key, events_key) then
  redis.call('XADD', events_key, '*', 'type', EVENT.run_compensated, 'at', now)
end
return {REPLY.compensated}
