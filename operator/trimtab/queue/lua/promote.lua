-- Move due retries from the delayed set onto the stream; safe to run from every worker.
-- Each member is the next attempt's task message as retry.lua was given it (a JSON array
-- of field/value pairs, enqueued at its due time), added as it is, so every field (the
-- retry-budget offset among them) survives the wait.
-- KEYS: delayed zset, stream    ARGV: now_ms, limit
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  local m = cjson.decode(member)
  local fields = m
  if m[1] == nil then
    -- A member written before messages were arrays: an object of fields, re-added whole.
    fields = {}
    for k, v in pairs(m) do fields[#fields + 1] = k; fields[#fields + 1] = v end
  end
  redis.call('XADD', KEYS[2], '*', unpack(fields))
  redis.call('ZREM', KEYS[1], member)
end
return #due
