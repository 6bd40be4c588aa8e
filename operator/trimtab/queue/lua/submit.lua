-- Create a run and enqueue its root steps, atomically; idempotent by key and run id.
-- Under a concurrency limit, a run that finds its workflow (or its key) full waits
-- instead: its roots are kept in the run and it joins a waiting list, to be admitted,
-- oldest first, as runs end (_admission.lua).
-- KEYS: run, events, idempotency (or any placeholder), workflow stats, deadlines,
--       the workflow's admitted set and waiting list, the key value's admitted set and
--       waiting list (or placeholders), the namespace's and the workflow's run
--       indexes, root stream 1..n
-- ARGV: run_id, ttl_s, now_ms, use_idem(0/1), deadline_ms (or ''), concurrency limit
--       (or ''), key limit (or ''), nfields, field/value * nfields, then per root
--       stream: step, pool, n, its task message (n field/value items)
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
local fields, i = take(ARGV, 9, tonumber(ARGV[8]) * 2)
redis.call('HSET', run_key, unpack(fields))
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[5], ARGV[5], run_id)
  redis.call('HSET', run_key, RUN_FIELD.deadline_ms, ARGV[5])  -- for resume.lua
end
local waits = nil  -- or the list the run waits in
if ARGV[6] ~= '' or ARGV[7] ~= '' then
  local a = {active = KEYS[6], waiting = KEYS[7], limit = tonumber(ARGV[6]),
    kactive = KEYS[8], kwaiting = KEYS[9], klimit = tonumber(ARGV[7]), ttl = ttl}
  redis.call('HSET', run_key, RUN_FIELD.admission, cjson.encode(a))
  waits = admit_new(a, run_key, now)
end
local roots = {}
for k = 12, #KEYS do
  local step, pool = ARGV[i], ARGV[i + 1]
  local message
  message, i = take(ARGV, i + 3, tonumber(ARGV[i + 2]))
  local p = step_prefix(step)
  redis.call('HSET', run_key, p .. STEP_FIELD.attempt, 1, p .. STEP_FIELD.pool, pool)
  if waits then
    roots[#roots + 1] = {stream = KEYS[k], step = step, message = message}
  else
    redis.call('HSET', run_key, p .. STEP_FIELD.state, STEP.queued, p .. STEP_FIELD.queued_ms, now)
    enqueue(KEYS[k], message)
  end
end
if waits then
  redis.call('HSET', run_key, RUN_FIELD.status, RUN.waiting, RUN_FIELD.roots, cjson.encode(roots))
  redis.call('RPUSH', waits, cjson.encode({run = run_key, events = events_key}))
end
redis.call('HSET', run_key, RUN_FIELD.ttl, ttl)
redis.call('EXPIRE', run_key, ttl)
redis.call('XADD', events_key, '*', 'type', EVENT.submitted, 'at', now)
redis.call('EXPIRE', events_key, ttl)
if use_idem then redis.call('SET', idem_key, run_id, 'EX', ttl) end
redis.call('HINCRBY', stats_key, WF_STAT.started, 1)
redis.call('ZADD', KEYS[10], now, run_id)  -- for listing (trimtab.queue.runindex)
redis.call('ZADD', KEYS[11], now, run_id)
return {1, run_id}
