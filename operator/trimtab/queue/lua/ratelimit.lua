-- A pool's model rate limit, shared by all its workers: two token buckets (requests and
-- tokens) that refill at the limit per minute times `factor`, each holding one second's
-- worth (so calls are spread out, not fired in a burst), and the factor itself: halved
-- by a 429 (down to MIN_RATE_FACTOR) and won back a twentieth per successful call that
-- took its turn after the last 429 (calls already under way then prove nothing).
-- A call bigger than its bucket may go once the bucket is full, leaving it in debt, so
-- no call waits forever.
-- KEYS: the pool's rate hash
-- ARGV: op (RATE_OP), now_ms (for 'ok': when the call took its turn), requests per
--       minute (or ''), tokens per minute (or ''), the call's tokens
-- Returns {'ok'} or, for a take that must wait, {'wait', ms}.
local key, op, now = KEYS[1], ARGV[1], tonumber(ARGV[2])
local MIN_RATE_FACTOR, DAY_S = 0.05, 86400
local v = redis.call('HMGET', key, 'req', 'tok', 'at', 'factor', 'throttled_at')
local factor = tonumber(v[4] or '1')
if op == RATE_OP.throttled then
  factor = math.max(MIN_RATE_FACTOR, factor / 2)
  -- Empty the buckets, but keep a debt a big call left: it is still owed.
  local req, tok = math.min(tonumber(v[1] or '0'), 0), math.min(tonumber(v[2] or '0'), 0)
  redis.call('HSET', key, 'factor', factor, 'req', req, 'tok', tok, 'at', now, 'throttled_at', now)
  redis.call('EXPIRE', key, DAY_S)
  return {REPLY.ok}
end
if op == RATE_OP.ok then
  if factor < 1 and now > tonumber(v[5] or '0') then
    redis.call('HSET', key, 'factor', math.min(1, factor + 0.05))
  end
  return {REPLY.ok}
end
local elapsed = math.max(0, now - tonumber(v[3] or now))
local wait = 0
local buckets = {{'req', ARGV[3], 1, v[1]}, {'tok', ARGV[4], tonumber(ARGV[5]), v[2]}}
local levels = {}
for _, b in ipairs(buckets) do
  if b[2] ~= '' then
    local per_ms = tonumber(b[2]) * factor / 60000
    local size = math.max(per_ms * 1000, 1)
    local level = math.min(size, tonumber(b[4] or size) + elapsed * per_ms)
    levels[b[1]] = level
    local need = math.min(b[3], size)  -- a call bigger than the bucket goes once it is full
    if level < need then wait = math.max(wait, (need - level) / per_ms) end
  end
end
if wait > 0 then
  for name, level in pairs(levels) do redis.call('HSET', key, name, level) end
  redis.call('HSET', key, 'at', now)
  redis.call('EXPIRE', key, DAY_S)
  return {REPLY.wait, tostring(math.ceil(wait))}
end
for _, b in ipairs(buckets) do
  if b[2] ~= '' then redis.call('HSET', key, b[1], levels[b[1]] - b[3]) end
end
redis.call('HSET', key, 'at', now)
redis.call('EXPIRE', key, DAY_S)
return {REPLY.ok}
