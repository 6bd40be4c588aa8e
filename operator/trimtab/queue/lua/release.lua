-- Hand claimed but unstarted-or-interrupted steps back for immediate redelivery (a
-- draining worker's leftovers): re-add each message, acknowledge the old delivery and
-- give back the delivery it used, so draining never pushes a step toward dead-letter.
-- A started delivery is released only while its fence is still the step's: if another
-- worker started the step since, the message is that worker's and is left alone.
-- KEYS: own stream, run 1..n      ARGV: group, then (msg_id, step, fence or '') per run
local stream, group = KEYS[1], ARGV[1]
local released = 0
for k = 2, #KEYS do
  local at = 3 * (k - 2) + 2
  local msg_id, step, fence = ARGV[at], ARGV[at + 1], ARGV[at + 2]
  local p = step_prefix(step)
  local ours = fence == '' or redis.call('HGET', KEYS[k], p .. STEP_FIELD.fence) == fence
  local entry = redis.call('XRANGE', stream, msg_id, msg_id)
  if ours and #entry == 1 and redis.call('XACK', stream, group, msg_id) == 1 then
    enqueue(stream, entry[1][2])
    if fence ~= '' and redis.call('HGET', KEYS[k], p .. STEP_FIELD.state) == STEP.running then
      redis.call('HSET', KEYS[k], p .. STEP_FIELD.state, STEP.queued)
      release_hold(KEYS[k], p)
      local counter = redis.call('HGET', KEYS[k], p .. STEP_FIELD.counted) or STEP_FIELD.deliveries
      redis.call('HINCRBY', KEYS[k], p .. counter, -1)
    end
    released = released + 1
  end
end
return released
