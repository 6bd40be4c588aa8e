-- One endpoint's circuit breaker, shared by every worker of a pool.
-- closed --(threshold failures, at least the failure rate of the window's calls)--> open
-- open --(cool-down)--> half_open
-- half_open --(probe succeeds)--> closed;  half_open --(probe fails)--> open
-- A half-open breaker whose probes never reported back (their worker died) hands out
-- new probes after another cool-down, so it cannot stay stuck.
-- KEYS: breaker hash
-- ARGV: op (allow | success | failure), now_ms, threshold, window_ms, open_ms, probes,
--       failure rate (0..1)
-- allow returns {verdict, state, retry_at_ms}; success/failure return the state after,
-- prefixed by 'changed:' when this call moved it.
local key, op, now = KEYS[1], ARGV[1], tonumber(ARGV[2])
local threshold, window, open_ms, probes = tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5]), tonumber(ARGV[6])
local rate = tonumber(ARGV[7] or '0')
local state = redis.call('HGET', key, 'state') or BREAKER.closed

-- The closed state counts calls and failures in fixed windows.
local function roll_window()
  local start = tonumber(redis.call('HGET', key, 'win_ms') or '0')
  if now - start > window then
    redis.call('HSET', key, 'win_ms', now, 'fails', 0, 'calls', 0)
    redis.call('PEXPIRE', key, window * 2)
  end
end
local opened = tonumber(redis.call('HGET', key, 'opened_ms') or '0')

local function open_now()
  redis.call('HSET', key, 'state', BREAKER.open, 'opened_ms', now, 'probes_out', 0, 'fails', 0,
    'calls', 0, 'win_ms', 0)
  redis.call('PERSIST', key)  -- the closed-state window's expiry must not end it early
  return 'changed:' .. BREAKER.open
end

if op == BREAKER_OP.allow then
  if state == BREAKER.closed then
    roll_window()
    redis.call('HINCRBY', key, 'calls', 1)
    return {VERDICT.allow, BREAKER.closed, '0'}
  end
  if state == BREAKER.open then
    if now < opened + open_ms then
      return {VERDICT.deny, BREAKER.open, tostring(opened + open_ms)}
    end
    redis.call('HSET', key, 'state', BREAKER.half_open, 'half_ms', now, 'probes_out', 1)
    return {VERDICT.allow, BREAKER.half_open, '0'}
  end
  local half = tonumber(redis.call('HGET', key, 'half_ms') or '0')
  if now >= half + open_ms then
    redis.call('HSET', key, 'half_ms', now, 'probes_out', 0)
  end
  if redis.call('HINCRBY', key, 'probes_out', 1) <= probes then
    return {VERDICT.allow, BREAKER.half_open, '0'}
  end
  redis.call('HINCRBY', key, 'probes_out', -1)
  return {VERDICT.deny, BREAKER.half_open, tostring(now + math.min(open_ms, 1000))}
end

if op == BREAKER_OP.success then
  if state == BREAKER.half_open then
    redis.call('DEL', key)
    return 'changed:' .. BREAKER.closed
  end
  return state
end

-- failure
if state == BREAKER.half_open then return open_now() end
if state == BREAKER.open then return state end
roll_window()
local fails = redis.call('HINCRBY', key, 'fails', 1)
local calls = math.max(fails, tonumber(redis.call('HGET', key, 'calls') or '0'))
if fails >= threshold and fails >= rate * calls then return open_now() end
return BREAKER.closed
