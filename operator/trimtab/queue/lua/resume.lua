-- Retry a run's dead-lettered steps: each one's next attempt goes onto its pool's
-- stream and its dead-letter entry is removed, and the run is running again, all at
-- once. Every dead step of the run is resumed together or none is: a run resumed with
-- a branch still dead would wait on it forever ('others-dead' names the ones left).
-- The steps the failure cancelled before they ran (dead-letter id '') are queued again
-- with them. A run that timed out stays ended ('timed-out'): its deadline has passed.
-- A run whose compensations began stays ended ('compensated'), and so does a cancelled
-- one ('cancelled').
-- A run with a deadline goes back on the deadline set (the sweep may have dropped it
-- once the run failed), so it times out even when no worker serves the resumed steps.
-- KEYS: run, events, dead-letter stream, workflow stats, deadlines, then one pool
--       stream per step
-- ARGV: now_ms, run id, then per step: name, dead-letter id, the next attempt's number (the
--       dead attempt + 1), n, its task message's field/value pairs (n items)
-- Returns {'resumed', step...}, {'gone'}, {'not-dead', step}, {'stale', step},
-- {'others-dead', step...} or {'conflict', step...} (more were cancelled since the
-- caller read the run: it reads again).
local run_key, events_key, dlq = KEYS[1], KEYS[2], KEYS[3]
local now, run_id = ARGV[1], ARGV[2]
if redis.call('EXISTS', run_key) == 0 then return {REPLY.gone} end
-- A cancelled run stays ended: someone asked it to stop.
if redis.call('HGET', run_key, RUN_FIELD.status) == RUN.cancelled then return {REPLY.cancelled} end
if redis.call('HEXISTS', run_key, RUN_FIELD.error) == 1 then return {REPLY.timed_out} end
-- A run whose compensations began has been undone: its outputs no longer stand.
if redis.call('HEXISTS', run_key, RUN_FIELD.undone) == 1 then return {REPLY.compensated} end
local given, order, i = {}, {}, 3
for k = 6, #KEYS do
  local step, entry, attempt = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local fields
  fields, i = take(ARGV, i + 4, tonumber(ARGV[i + 3]))
  local p = step_prefix(step)
  local want = STEP.dead
  if entry == '' then want = STEP.cancelled end
  if redis.call('HGET', run_key, p .. STEP_FIELD.state) ~= want then
    return {REPLY.not_dead, step}
  end
  if tonumber(attempt) ~= tonumber(redis.call('HGET', run_key, p .. STEP_FIELD.attempt)) + 1 then
    return {REPLY.stale, step}
  end
  given[step] = {k, entry, attempt, fields}
  order[#order + 1] = step
end
local flat, others, moved = redis.call('HGETALL', run_key), {}, {}
for j = 1, #flat, 2 do
  local step = step_of_field(flat[j], STEP_FIELD.state)
  if step and flat[j + 1] == STEP.dead and not given[step] then others[#others + 1] = step end
  -- Cancelled since the caller read the run (a worker stopped it): read again.
  if step and flat[j + 1] == STEP.cancelled and not given[step] then moved[#moved + 1] = step end
end
if #others > 0 then
  table.sort(others)
  return {REPLY.others_dead, unpack(others)}
end
if #moved > 0 then return {REPLY.conflict, unpack(moved)} end
for _, step in ipairs(order) do
  local g, p = given[step], step_prefix(step)
  redis.call('HSET', run_key, p .. STEP_FIELD.state, STEP.queued, p .. STEP_FIELD.attempt, g[3],
    p .. STEP_FIELD.deliveries, 0, p .. STEP_FIELD.interrupted, 0, p .. STEP_FIELD.queued_ms, now)
  redis.call('HDEL', run_key, p .. STEP_FIELD.ended_ms)
  enqueue(KEYS[g[1]], g[4])
  if g[2] ~= '' then redis.call('XDEL', dlq, g[2]) end
  redis.call('XADD', events_key, '*', 'type', EVENT.step_resumed, 'step', step, 'at', now)
end
if redis.call('HGET', run_key, RUN_FIELD.status) == RUN.failed then
  redis.call('HINCRBY', KEYS[4], WF_STAT.failed, -1)
end
local status = RUN.running
if tonumber(redis.call('HGET', run_key, RUN_FIELD.in_review) or '0') > 0 then status = RUN.review end
redis.call('HSET', run_key, RUN_FIELD.status, status)
redis.call('HDEL', run_key, RUN_FIELD.ended_ms)
rejoin_admission(run_key, now)
local deadline = redis.call('HGET', run_key, RUN_FIELD.deadline_ms)
if deadline then redis.call('ZADD', KEYS[5], deadline, run_id) end
return {REPLY.resumed, unpack(order)}
