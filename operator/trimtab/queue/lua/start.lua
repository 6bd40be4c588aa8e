-- Mark a delivered step attempt as running and count its deliveries.
-- Returns {'run', inputs, version, created_ms, tokens, cost, output of each dependency...}
-- -- all the step needs,
-- in the same round trip -- or {'duplicate'} (already done, superseded or run gone:
-- acked here), or {'exhausted'} (delivered more than max times: the caller dead-letters).
-- KEYS: run, own stream
-- ARGV: step, attempt, msg_id, group, now_ms, max_deliveries, consumer, dependency...
local run_key, stream = KEYS[1], KEYS[2]
local step, attempt, msg_id, group = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local p = 's:' .. step .. ':'
local stale, state = ack_if_stale(run_key, step, attempt, stream, group, msg_id)
if stale then return {'duplicate'} end
local deliveries = redis.call('HINCRBY', run_key, p .. 'dlv', 1)
if deliveries > tonumber(ARGV[6]) then return {'exhausted'} end
redis.call('HSET', run_key, p .. 'state', 'running', p .. 'start_ms', ARGV[5],
  p .. 'worker', ARGV[7])
local fields = {'inputs', 'version', 'created_ms', 'tokens', 'cost'}
for i = 8, #ARGV do fields[#fields + 1] = 's:' .. ARGV[i] .. ':out' end
local values = redis.call('HMGET', run_key, unpack(fields))
local out = {'run'}
for i = 1, #fields do out[#out + 1] = values[i] or '' end
return out
