-- Hold a model step's worst case (its prompt plus its whole completion allowance, and
-- their price) against its run's budget and the AgentBudget windows that cover it,
-- before the call, so steps running in parallel (of one run, or of many runs) can never
-- together spend past a limit: what was spent, plus what the other calls under way
-- hold, plus this worst case must fit each limit. The hold is given back when the
-- attempt ends (release_hold, _common.lua), when the spend itself is booked.
-- KEYS: run, then one AgentBudget window per limit that applies
-- ARGV: step, attempt, fence, tokens, cost, token limit (or ''), cost limit (or ''),
--       then per window: token limit (or ''), cost limit (or ''), TTL seconds, its index
-- Returns {'reserved'}, {'duplicate'} (the attempt is no longer running, or another
-- delivery owns it now), or {'over-budget', LIMIT_KIND, spent, held by the
-- other calls, the window's index} where the index is '' for the run's own limit.
-- The windows are named in the run hash for the scripts that end the attempt: one
-- Redis primary holds them all (trimtab.queue).
local run_key, step, attempt, fence = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local p = step_prefix(step)
if not runs_attempt(run_key, step, attempt, fence) then return {REPLY.duplicate} end
-- An earlier delivery's hold on this step (its worker died) is replaced, not added.
release_hold(run_key, p)
local tokens, cost = tonumber(ARGV[4]), tonumber(ARGV[5])

-- Nil when `spent + held + want` fits `limit` ('' is no limit), else the refusal.
local function refusal(kind, limit, spent, held, want, label)
  if limit == '' or spent + held + want <= tonumber(limit) then return nil end
  return {REPLY.over_budget, kind, tostring(spent), tostring(held), label}
end

local run = redis.call('HMGET', run_key, RUN_FIELD.tokens, RUN_FIELD.cost,
  RUN_FIELD.held_tokens, RUN_FIELD.held_cost)
local refused = refusal(LIMIT_KIND.tokens, ARGV[6], tonumber(run[1] or '0'), tonumber(run[3] or '0'), tokens, '')
  or refusal(LIMIT_KIND.cost, ARGV[7], tonumber(run[2] or '0'), tonumber(run[4] or '0'), cost, '')
if refused then return refused end
-- What a window has spent leaves no room for this call, whatever settles (a call that
-- would fit the empty window): it is spent out for calls this size, of that kind, and
-- new runs are refused until it turns (trimtab.reconcile.agentbudget.windows).
local function mark_spent_out(key, field, spent, want, limit, ttl)
  if limit == '' then return end
  limit = tonumber(limit)
  if want <= limit and spent + want > limit then
    redis.call('HSET', key, field, want)
    redis.call('EXPIRE', key, ttl)
  end
end

for k = 2, #KEYS do
  local i = 8 + (k - 2) * 4
  local w = redis.call('HMGET', KEYS[k], WINDOW_FIELD.tokens, WINDOW_FIELD.cost,
    WINDOW_FIELD.held_tokens, WINDOW_FIELD.held_cost)
  local spent_tokens, spent_cost = tonumber(w[1] or '0'), tonumber(w[2] or '0')
  refused = refusal(LIMIT_KIND.tokens, ARGV[i], spent_tokens, tonumber(w[3] or '0'), tokens, ARGV[i + 3])
    or refusal(LIMIT_KIND.cost, ARGV[i + 1], spent_cost, tonumber(w[4] or '0'), cost, ARGV[i + 3])
  if refused then
    mark_spent_out(KEYS[k], WINDOW_FIELD.spent_out_tokens, spent_tokens, tokens, ARGV[i], ARGV[i + 2])
    mark_spent_out(KEYS[k], WINDOW_FIELD.spent_out_cost, spent_cost, cost, ARGV[i + 1], ARGV[i + 2])
    return refused
  end
end

redis.call('HSET', run_key, p .. STEP_FIELD.held_tokens, tokens, p .. STEP_FIELD.held_cost, cost)
redis.call('HINCRBY', run_key, RUN_FIELD.held_tokens, tokens)
redis.call('HINCRBYFLOAT', run_key, RUN_FIELD.held_cost, cost)
if #KEYS > 1 then
  local named = {}
  for k = 2, #KEYS do
    redis.call('HINCRBY', KEYS[k], WINDOW_FIELD.held_tokens, tokens)
    redis.call('HINCRBYFLOAT', KEYS[k], WINDOW_FIELD.held_cost, cost)
    redis.call('EXPIRE', KEYS[k], ARGV[8 + (k - 2) * 4 + 2])
    named[#named + 1] = KEYS[k]
  end
  redis.call('HSET', run_key, p .. STEP_FIELD.budget_windows, table.concat(named, ' '))
end
return {REPLY.reserved}
