-- Mark a delivered step attempt as running and count its deliveries. A redelivery whose
-- worker died holding other steps too (`interrupted`: the caller saw them all left
-- idle together) was cut off with its worker, not by the step itself, so it counts
-- against a limit INTERRUPTED_FACTOR times higher: a worker killed under load does
-- not dead-letter a sound step, while a step that kills every worker it runs on
-- still ends in the dead-letter stream.
-- Returns, as JSON, {reply = 'run', inputs, version, created_ms, tokens, cost, session,
-- traceparent, outputs =
-- {dependency = output}} -- all the step needs, in the same round trip -- or
-- {reply = 'duplicate'} (already done, superseded or run gone: acked here), or
-- {reply = 'exhausted'} (delivered more than max times: the caller dead-letters) or
-- {reply = 'cancelled'} (the run has failed: nothing more of it starts, the step is
-- cancelled and acked; resume.lua queues it again).
-- 'run' and 'exhausted' carry `fence`: this delivery's token, which every later script
-- for the attempt checks (_common.lua), so only the latest delivery can move the step.
-- Decoded in one place: trimtab.queue.tasks.PoolQueue.start.
-- KEYS: run, own stream
-- ARGV: step, attempt, msg_id, group, now_ms, max_deliveries, consumer,
--       interrupted (0/1), the worker's capacity type ('' when unknown), dependency...
local run_key, stream = KEYS[1], KEYS[2]
local step, attempt, msg_id, group = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local p = step_prefix(step)
local state = redis.call('HGET', run_key, p .. STEP_FIELD.state)
-- A step in review waits for a person; a message for it (a duplicate) starts nothing.
if state == STEP.review or outdated(run_key, step, state, attempt) then
  redis.call('XACK', stream, group, msg_id)
  return cjson.encode({reply = REPLY.duplicate})
end
if given_up(run_key) then
  redis.call('HSET', run_key, p .. STEP_FIELD.state, STEP.cancelled)
  release_hold(run_key, p)  -- a dead worker's, on a redelivery
  redis.call('XACK', stream, group, msg_id)
  return cjson.encode({reply = REPLY.cancelled})
end
-- Never reset, so a token is never handed out twice for one step.
local fence = tostring(redis.call('HINCRBY', run_key, p .. STEP_FIELD.fence, 1))
-- This delivery holds nothing until it reserves: an earlier one's hold (its worker died
-- or stalled, and fenced out now, it can book no spend) is given back.
release_hold(run_key, p)
local counter, limit = STEP_FIELD.deliveries, tonumber(ARGV[6])
if ARGV[8] == '1' then counter, limit = STEP_FIELD.interrupted, INTERRUPTED_FACTOR * limit end
-- Which counter this delivery used, so a drain gives back that one (release.lua).
redis.call('HSET', run_key, p .. STEP_FIELD.counted, counter)
local exhausted = redis.call('HINCRBY', run_key, p .. counter, 1) > limit
if exhausted then
  return cjson.encode({reply = REPLY.exhausted, fence = fence})
end
redis.call('HSET', run_key, p .. STEP_FIELD.state, STEP.running, p .. STEP_FIELD.started_ms, ARGV[5],
  p .. STEP_FIELD.worker, ARGV[7], p .. STEP_FIELD.capacity, ARGV[9])
local v = redis.call('HMGET', run_key, RUN_FIELD.inputs, RUN_FIELD.version, RUN_FIELD.created_ms,
  RUN_FIELD.tokens, RUN_FIELD.cost, RUN_FIELD.session, RUN_FIELD.traceparent)
local reply = {reply = REPLY.run, fence = fence, inputs = v[1], version = v[2],
  created_ms = v[3], tokens = v[4], cost = v[5], session = v[6], traceparent = v[7],
  outputs = {}}
for i = 10, #ARGV do
  local out = redis.call('HGET', run_key, step_prefix(ARGV[i]) .. STEP_FIELD.output)
  if out then reply.outputs[ARGV[i]] = out end
end
return cjson.encode(reply)
