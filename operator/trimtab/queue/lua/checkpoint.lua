-- Keep an agent step's transcript after a turn (the model's reply, then its tool calls'
-- results), so whoever runs the step next goes on from there: a retry, or the worker
-- that takes over a dead one's delivery. Only the delivery that holds the attempt
-- writes, so a stalled worker cannot put back an older transcript. Each keep is an
-- `agent_turn` event: its phase (reply: the model asked for the tools it names;
-- results: their results are in; answer: the model answered).
-- KEYS: run, events
-- ARGV: step, attempt, fence, transcript (JSON), turn, phase, tools called (comma-separated),
--       now
-- Returns {'ok'} or {'duplicate'} (nothing kept).
local run_key, events_key, step, attempt = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
if not runs_attempt(run_key, step, attempt, ARGV[3]) then return {REPLY.duplicate} end
redis.call('HSET', run_key, step_prefix(step) .. STEP_FIELD.transcript, ARGV[4])
redis.call('XADD', events_key, '*', 'type', EVENT.agent_turn, 'step', step, 'turn', ARGV[5],
  'phase', ARGV[6], 'tools', ARGV[7], 'at', ARGV[8])
return {REPLY.ok}
