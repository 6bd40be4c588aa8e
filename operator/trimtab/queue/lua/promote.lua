-- Move due retries from the delayed sets onto their streams; safe to run from every
-- worker. Each priority level has its own delayed set, promoted onto its own stream.
-- Each member is the next attempt's task message as retry.lua was given it (a JSON array
-- of field/value pairs, enqueued at its due time), added as it is, so every field (the
-- retry-budget offset among them) survives the wait.
-- KEYS: (delayed zset, stream) per level    ARGV: now_ms, limit per level
local moved = 0
for k = 1, #KEYS, 2 do
  local delayed, stream = KEYS[k], KEYS[k + 1]
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
  for _, member in ipairs(due) do
    local m = cjson.decode(member)
    local fields = m
    if m[1] == nil then
      -- A member written before messages were arrays: an object of fields, re-added whole.
      fields = {}
      for f, v in pairs(m) do fields[#fields + 1] = f; fields[#fields + 1] = v end
    end
    enqueue(stream, fields)
    redis.call('ZREM', delayed, member)
  end
  moved = moved + #due
end
return moved
