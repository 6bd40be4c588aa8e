-- Prepended by trimtab.queue.scripts to every script, after _wire.lua.

-- A task onto a pool's stream, and that stream onto its namespace's touched set, scored
-- by the new entry's milliseconds: the operator reads an idle pool's load only once work
-- has arrived for it (trimtab.queue.touched). The set is named from the stream's own
-- namespace prefix, which holds the namespace's hash tag, so it lives in the slot of the
-- keys the script was given (as the streams a waiting run keeps in its record do).
local function enqueue(stream, message)
  local id = redis.call('XADD', stream, '*', unpack(message))
  local prefix = string.match(stream, '^(.-}:)')
  redis.call('ZADD', prefix .. NS_KEY.touched, tonumber(string.match(id, '^(%d+)')), stream)
  return id
end

-- A step that has ended for good (done, dead, cancelled): nothing starts or moves it.
local function has_ended(state)
  return state == STEP.done or state == STEP.dead or state == STEP.cancelled
end

-- A run that failed or was cancelled has given up: nothing more of it starts, and the
-- steps it had under way are cancelled (wire.GIVEN_UP).
local function given_up(run_key)
  local status = redis.call('HGET', run_key, RUN_FIELD.status)
  return status == RUN.failed or status == RUN.cancelled
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

-- Whether the delivery holding `fence` still runs the step's `attempt`: what a worker
-- must be before it holds or books anything for the attempt.
local function runs_attempt(run_key, step, attempt, fence)
  local p = step_prefix(step)
  local state = redis.call('HGET', run_key, p .. STEP_FIELD.state)
  return state == STEP.running and not outdated(run_key, step, state, attempt)
    and redis.call('HGET', run_key, p .. STEP_FIELD.fence) == fence
end

-- The next `n` arguments from position i on, and the position after them: how the
-- scripts take a list the caller built (a task message's field/value pairs).
local function take(args, i, n)
  local out = {}
  for k = i, i + n - 1 do out[#out + 1] = args[k] end
  return out, i + n
end


-- The AgentBudget windows the step's hold is also on (reserve.lua names them in the
-- run hash, so whichever script ends the attempt finds them). A window whose key has
-- expired is skipped: its figures are no longer read, and writing would revive it.
local function budget_windows(run_key, p)
  local named = redis.call('HGET', run_key, p .. STEP_FIELD.budget_windows)
  local found = {}
  if not named then return found end
  for key in string.gmatch(named, '%S+') do
    if redis.call('EXISTS', key) == 1 then found[#found + 1] = key end
  end
  return found
end

-- Count what a step's call spent on its run, the step and its workflow (`stats_key`);
-- the budget windows are booked where the hold ends (release_hold).
local function book_spend(run_key, p, stats_key, tokens, cost)
  redis.call('HINCRBY', run_key, RUN_FIELD.tokens, tokens)
  redis.call('HINCRBYFLOAT', run_key, RUN_FIELD.cost, cost)
  redis.call('HINCRBY', run_key, p .. STEP_FIELD.tokens, tokens)
  redis.call('HINCRBYFLOAT', run_key, p .. STEP_FIELD.cost, cost)
  redis.call('HINCRBY', stats_key, WF_STAT.tokens, tokens)
  redis.call('HINCRBYFLOAT', stats_key, WF_STAT.cost, cost)
end

-- Give back what the step's attempt held against its run's budget and its AgentBudget
-- windows (reserve.lua), booking on those windows what the attempt spent (`tokens`,
-- `cost`; none when omitted): every script that ends or hands back an attempt calls
-- it, so a hold lasts only while the attempt may still spend. A redelivery's reserve
-- replaces a dead worker's hold.
local function release_hold(run_key, p, tokens, cost)
  local held = redis.call('HMGET', run_key, p .. STEP_FIELD.held_tokens, p .. STEP_FIELD.held_cost)
  if not held[1] then return end
  local held_tokens, held_cost = tonumber(held[1]), tonumber(held[2] or '0')
  redis.call('HINCRBY', run_key, RUN_FIELD.held_tokens, -held_tokens)
  redis.call('HINCRBYFLOAT', run_key, RUN_FIELD.held_cost, -held_cost)
  for _, key in ipairs(budget_windows(run_key, p)) do
    redis.call('HINCRBY', key, WINDOW_FIELD.held_tokens, -held_tokens)
    redis.call('HINCRBYFLOAT', key, WINDOW_FIELD.held_cost, -held_cost)
    redis.call('HINCRBY', key, WINDOW_FIELD.tokens, tokens or 0)
    redis.call('HINCRBYFLOAT', key, WINDOW_FIELD.cost, cost or 0)
  end
  redis.call('HDEL', run_key, p .. STEP_FIELD.held_tokens, p .. STEP_FIELD.held_cost,
    p .. STEP_FIELD.budget_windows)
end

-- End the hold of a step parked for review without a completion (rejected, or its run
-- timed out): its hold was settled to what the attempt used (settle_hold), and that
-- spend is real, so it is booked on the run, the step, the workflow and the windows.
local function book_review_hold(run_key, p, stats_key)
  local held = redis.call('HMGET', run_key, p .. STEP_FIELD.held_tokens, p .. STEP_FIELD.held_cost)
  local tokens, cost = tonumber(held[1] or '0'), tonumber(held[2] or '0')
  release_hold(run_key, p, tokens, cost)
  book_spend(run_key, p, stats_key, tokens, cost)
end

-- Bring the step's hold down to what its attempt really used (a step parked for review:
-- its spend is recorded only when a reviewer approves, so until then the hold stands
-- for it, no longer the worst case), on its run and its budget windows alike. No hold,
-- nothing to settle.
local function settle_hold(run_key, p, tokens, cost)
  local held = redis.call('HMGET', run_key, p .. STEP_FIELD.held_tokens, p .. STEP_FIELD.held_cost)
  if not held[1] then return end
  local less_tokens, less_cost = tokens - tonumber(held[1]), cost - tonumber(held[2] or '0')
  redis.call('HINCRBY', run_key, RUN_FIELD.held_tokens, less_tokens)
  redis.call('HINCRBYFLOAT', run_key, RUN_FIELD.held_cost, less_cost)
  for _, key in ipairs(budget_windows(run_key, p)) do
    redis.call('HINCRBY', key, WINDOW_FIELD.held_tokens, less_tokens)
    redis.call('HINCRBYFLOAT', key, WINDOW_FIELD.held_cost, less_cost)
  end
  redis.call('HSET', run_key, p .. STEP_FIELD.held_tokens, tokens, p .. STEP_FIELD.held_cost, cost)
end

-- Append how the step's current attempt ended to its attempt log (wire.AttemptField),
-- in the script that ends it: the step's own fields keep only its latest attempt, and
-- the history keeps every one (its pool, worker, capacity and timings). Tokens and
-- cost are the step's totals as the attempt ends, plus `pending_tokens`/`pending_cost`
-- an attempt parked for review has spent but not booked yet; an attempt's own are the
-- difference from the entry before. The newest ATTEMPTS_LOGGED entries are kept.
local function log_attempt(run_key, p, attempt, outcome, now, err, pending_tokens, pending_cost)
  local f = STEP_FIELD
  local v = redis.call('HMGET', run_key, p .. f.attempts, p .. f.pool, p .. f.worker,
    p .. f.capacity, p .. f.started_ms, p .. f.tokens, p .. f.cost)
  local log = v[1] and cjson.decode(v[1]) or {}
  local e = {}
  e[ATTEMPT_FIELD.attempt] = tonumber(attempt)
  e[ATTEMPT_FIELD.outcome] = outcome
  e[ATTEMPT_FIELD.pool] = v[2] or ''
  e[ATTEMPT_FIELD.worker] = v[3] or ''
  e[ATTEMPT_FIELD.capacity] = v[4] or ''
  e[ATTEMPT_FIELD.started_ms] = tonumber(v[5] or '0')
  e[ATTEMPT_FIELD.ended_ms] = tonumber(now)
  e[ATTEMPT_FIELD.tokens] = tonumber(v[6] or '0') + (pending_tokens or 0)
  e[ATTEMPT_FIELD.cost] = tonumber(v[7] or '0') + (pending_cost or 0)
  e[ATTEMPT_FIELD.error] = err or ''
  log[#log + 1] = e
  while #log > ATTEMPTS_LOGGED do table.remove(log, 1) end
  redis.call('HSET', run_key, p .. f.attempts, cjson.encode(log))
end
