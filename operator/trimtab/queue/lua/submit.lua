-- Create a run and enqueue its root steps, atomically; idempotent by key and run id.
-- KEYS: run, events, idempotency (or any placeholder), workflow stats, deadlines,
--       root stream 1..n
-- ARGV: run_id, ttl_s, now_ms, use_idem(0/1), deadline_ms (or ''), nfields,
--       field/value * nfields, then per root stream: step, pool, n, its task message
--       (n field/value items)
-- Returns {1, run_id} (created), {0, run_id} (it existed) or {-1, used, maxmemory}
-- (refused: Redis is too full to take new work; trimtab.queue.runs.submit says so).
local run_key, events_key, idem_key, stats_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local run_id, ttl, now = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local use_idem = ARGV[4] == '1'
if use_idem then
  local existing = redis.call('GET', idem_key)
  if existing then return {0, existing} end
end
if redis.call('EXISTS', run_key) == 1 then return {0, run_id} end
local memory = redis.call('INFO', 'memory')
local used = tonumber(string.match(memory, 'used_memory:(%d+)'))
local limit = tonumber(string.match(memory, 'maxmemory:(%d+)'))
if limit and limit > 0 and used * 100 > limit * ADMIT_BELOW_PERCENT then
  return {-1, used, limit}
end
local fields, i = take(ARGV, 7, tonumber(ARGV[6]) * 2)
redis.call('HSET', run_key, unpack(fields))
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[5], ARGV[5], run_id)
  redis.call('HSET', run_key, RUN_FIELD.deadline_ms, ARGV[5])  -- for resume.lua
end
for k = 6, #KEYS do
  local step, pool = ARGV[i], ARGV[i + 1]
  local message
  message, i = take(ARGV, i + 3, tonumber(ARGV[i + 2]))
  local p = step_prefix(step)
  redis.call('HSET', run_key, p .. STEP_FIELD.state, STEP.queued, p .. STEP_FIELD.attempt, 1, p .. STEP_FIELD.pool, pool,
    p .. STEP_FIELD.queued_ms, now)
  redis.call('XADD', KEYS[k], '*', unpack(message))
end
redis.call('EXPIRE', run_key, ttl)
redis.call('XADD', events_key, '*', 'type', EVENT.submitted, 'at', now)
redis.call('EXPIRE', events_key, ttl)
if use_idem then redis.call('SET', idem_key, run_id, 'EX', ttl) end
redis.call('HINCRBY', stats_key, 'started', 1)
return {1, run_id}
