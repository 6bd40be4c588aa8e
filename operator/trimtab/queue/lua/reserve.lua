-- Hold a model step's worst case (its prompt plus its whole completion allowance, and
-- their price) against its run's budget before the call, so steps running in parallel
-- can never together spend past it: what the run has spent, plus what the other steps
-- under way hold, plus this worst case must fit each limit. The hold is given back when
-- the attempt ends (release_hold, _common.lua), when the spend itself is recorded.
-- KEYS: run
-- ARGV: step, attempt, fence, tokens, cost, token limit (or ''), cost limit (or '')
-- Returns {'reserved'}, {'duplicate'} (the attempt is no longer running, or another
-- delivery owns it now), or
-- {'over-budget', 'tokens' or 'cost', spent, held by the other steps}.
local run_key, step, attempt, fence = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local p = step_prefix(step)
local state = redis.call('HGET', run_key, p .. STEP_FIELD.state)
if state ~= STEP.running or outdated(run_key, step, state, attempt)
    or redis.call('HGET', run_key, p .. STEP_FIELD.fence) ~= fence then
  return {REPLY.duplicate}
end
local mine = redis.call('HMGET', run_key, p .. STEP_FIELD.held_tokens, p .. STEP_FIELD.held_cost)
local run = redis.call('HMGET', run_key, RUN_FIELD.tokens, RUN_FIELD.cost,
  RUN_FIELD.held_tokens, RUN_FIELD.held_cost)
local mine_tokens, mine_cost = tonumber(mine[1] or '0'), tonumber(mine[2] or '0')
local spent_tokens, spent_cost = tonumber(run[1] or '0'), tonumber(run[2] or '0')
-- An earlier delivery's hold on this step (its worker died) is replaced, not added.
local held_tokens = tonumber(run[3] or '0') - mine_tokens
local held_cost = tonumber(run[4] or '0') - mine_cost
local tokens, cost = tonumber(ARGV[4]), tonumber(ARGV[5])
if ARGV[6] ~= '' and spent_tokens + held_tokens + tokens > tonumber(ARGV[6]) then
  return {REPLY.over_budget, 'tokens', tostring(spent_tokens), tostring(held_tokens)}
end
if ARGV[7] ~= '' and spent_cost + held_cost + cost > tonumber(ARGV[7]) then
  return {REPLY.over_budget, 'cost', tostring(spent_cost), tostring(held_cost)}
end
redis.call('HSET', run_key, p .. STEP_FIELD.held_tokens, tokens, p .. STEP_FIELD.held_cost, cost)
redis.call('HINCRBY', run_key, RUN_FIELD.held_tokens, tokens - mine_tokens)
redis.call('HINCRBYFLOAT', run_key, RUN_FIELD.held_cost, cost - mine_cost)
return {REPLY.reserved}
