-- Prepended by trimtab.queue.scripts to every script, after _wire.lua.

-- A step that has ended for good (done, dead, cancelled): nothing starts or moves it.
local function has_ended(state)
  return state == STEP.done or state == STEP.dead or state == STEP.cancelled
end

-- A delivery of `attempt` is out of date when its run is gone (no state), its step has
-- ended, or the step has moved on to another attempt.
local function outdated(run_key, step, state, attempt)
  return (not state) or has_ended(state)
    or redis.call('HGET', run_key, step_prefix(step) .. STEP_FIELD.attempt) ~= attempt
end

-- A delivery is stale when its step is gone (run expired), done or dead, or has moved
-- on to another attempt: it is acknowledged and nothing else happens, so no step runs
-- or completes twice. It is also stale when another delivery of the same attempt has
-- started since (`fence`, the token start.lua handed out, is no longer the step's): a
-- worker that stalled past its visibility timeout can no longer act for a step another
-- worker owns; that delivery is not acknowledged, since the message is the owner's now.
-- A fence of '' is a reviewer's, who acts only for a step in review.
-- Returns whether it was stale, and the step's state.
local function ack_if_stale(run_key, step, attempt, fence, stream, group, msg_id)
  local p = step_prefix(step)
  local state = redis.call('HGET', run_key, p .. STEP_FIELD.state)
  if outdated(run_key, step, state, attempt) then
    redis.call('XACK', stream, group, msg_id)
    return true, state
  end
  if fence == '' then return state ~= STEP.review, state end
  if redis.call('HGET', run_key, p .. STEP_FIELD.fence) ~= fence then return true, state end
  return false, state
end

-- The next `n` arguments from position i on, and the position after them: how the
-- scripts take a list the caller built (a task message's field/value pairs).
local function take(args, i, n)
  local out = {}
  for k = i, i + n - 1 do out[#out + 1] = args[k] end
  return out, i + n
end


-- Give back what the step's attempt held against its run's budget (reserve.lua): every
-- script that ends or hands back an attempt calls it, so a hold lasts only while the
-- attempt may still spend. A redelivery's reserve replaces a dead worker's hold.
local function release_hold(run_key, p)
  local tokens = redis.call('HGET', run_key, p .. STEP_FIELD.held_tokens)
  if not tokens then return end
  local cost = redis.call('HGET', run_key, p .. STEP_FIELD.held_cost) or '0'
  redis.call('HINCRBY', run_key, RUN_FIELD.held_tokens, -tonumber(tokens))
  redis.call('HINCRBYFLOAT', run_key, RUN_FIELD.held_cost, -tonumber(cost))
  redis.call('HDEL', run_key, p .. STEP_FIELD.held_tokens, p .. STEP_FIELD.held_cost)
end

-- Bring the step's hold down to what its attempt really used (a step parked for review:
-- its spend is recorded only when a reviewer approves, so until then the hold stands
-- for it, no longer the worst case). No hold, nothing to settle.
local function settle_hold(run_key, p, tokens, cost)
  local held = redis.call('HMGET', run_key, p .. STEP_FIELD.held_tokens, p .. STEP_FIELD.held_cost)
  if not held[1] then return end
  redis.call('HINCRBY', run_key, RUN_FIELD.held_tokens, tokens - tonumber(held[1]))
  redis.call('HINCRBYFLOAT', run_key, RUN_FIELD.held_cost, cost - tonumber(held[2] or '0'))
  redis.call('HSET', run_key, p .. STEP_FIELD.held_tokens, tokens, p .. STEP_FIELD.held_cost, cost)
end
