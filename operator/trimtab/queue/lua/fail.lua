-- Give up on a step: record why, move it to the dead-letter stream, fail the run,
-- acknowledge the delivery -- atomically, so a failed step is never silently dropped.
-- Without entry fields (the workflow keeps no dead letters) the step and run fail the
-- same way and nothing goes onto the stream.
-- KEYS: run, events, own stream, dead-letter stream, workflow stats, ended-runs outbox
-- ARGV: step, attempt, msg_id, group, fence, reason, now_ms, then the dead-letter entry's
--       field/value pairs (trimtab.queue.deadletter.entry_fields)
local run_key, events_key, stream, dlq = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local step, attempt, msg_id, group, fence = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local reason, now = ARGV[6], ARGV[7]
local p = step_prefix(step)
local entry = take(ARGV, 8, #ARGV - 7)
local stale, state = ack_if_stale(run_key, step, attempt, fence, stream, group, msg_id)
if stale then return REPLY.duplicate end
release_hold(run_key, p)
log_attempt(run_key, p, attempt, ATTEMPT.dead, now, reason)
-- A run fails once: a second branch dying adds its dead letter, not a second failure.
local already = given_up(run_key)
redis.call('HSET', run_key, p .. STEP_FIELD.state, STEP.dead, p .. STEP_FIELD.error, reason, p .. STEP_FIELD.ended_ms, now)
if #entry > 0 then
  redis.call('XADD', dlq, 'MAXLEN', '~', DEAD_LETTERS_MAX, '*', unpack(entry))
  -- Runs with a dead letter, each counted once however many steps die or how often.
  if redis.call('HSETNX', run_key, RUN_FIELD.dead_lettered, 1) == 1 then
    redis.call('HINCRBY', KEYS[5], WF_STAT.dead_lettered, 1)
  end
end
redis.call('XACK', stream, group, msg_id)
redis.call('XADD', events_key, '*', 'type', EVENT.step_dead, 'step', step, 'reason', reason,
  'at', now)
if already then return REPLY.also_dead end
fail_run(run_key, events_key, KEYS[5], KEYS[6], now)
return REPLY.dead
