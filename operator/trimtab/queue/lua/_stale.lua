-- Prepended by trimtab.queue.scripts to every script that acts on one step attempt.
-- A delivery is stale when its step is gone (run expired), done or dead, or has moved
-- on to another attempt: it is acknowledged and nothing else happens, so no step runs
-- or completes twice. Returns whether it was stale, and the step's state.
local function ack_if_stale(run_key, step, attempt, stream, group, msg_id)
  local state = redis.call('HGET', run_key, 's:' .. step .. ':state')
  if (not state) or state == 'done' or state == 'dead'
      or redis.call('HGET', run_key, 's:' .. step .. ':att') ~= attempt then
    redis.call('XACK', stream, group, msg_id)
    return true, state
  end
  return false, state
end

