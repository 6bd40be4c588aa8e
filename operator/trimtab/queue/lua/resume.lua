-- Retry a dead-lettered step: its run is running again, the step's next attempt goes
-- onto its pool's stream, and the dead-letter entry is removed, all at once.
-- KEYS: run, events, pool stream, dead-letter stream, workflow stats
-- ARGV: step, dead-letter id, now_ms, then the next message's field/value pairs
-- (its attempt must be the dead attempt + 1)
local run_key, events_key, stream, dlq = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local step, entry, now = ARGV[1], ARGV[2], ARGV[3]
local p = 's:' .. step .. ':'
if redis.call('EXISTS', run_key) == 0 then return 'gone' end
if redis.call('HGET', run_key, p .. 'state') ~= 'dead' then return 'not-dead' end
local fields, attempt = {}, nil
for i = 4, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  if ARGV[i] == 'att' then attempt = ARGV[i + 1] end
end
if tonumber(attempt) ~= tonumber(redis.call('HGET', run_key, p .. 'att')) + 1 then
  return 'stale'
end
redis.call('HSET', run_key, p .. 'state', 'queued', p .. 'att', attempt, p .. 'dlv', 0,
  p .. 'qms', now, 'status', 'running')
redis.call('HDEL', run_key, 'end_ms', p .. 'end_ms')
redis.call('HINCRBY', KEYS[5], 'failed', -1)
redis.call('XADD', stream, '*', unpack(fields))
redis.call('XDEL', dlq, entry)
redis.call('XADD', events_key, '*', 'type', 'step_resumed', 'step', step, 'at', now)
return 'resumed'
