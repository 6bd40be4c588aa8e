-- Book what a failed attempt's call spent (its output was refused: not JSON, or not
-- what the schema asks), before the attempt ends: the tokens were used, so they count
-- on the run, the workflow's figures and the AgentBudget windows the call was held on,
-- as a completion's do. The hold stays until the script that ends the attempt gives it
-- back (release_hold), so for that moment the spend counts twice, never not at all.
-- KEYS: run, workflow stats
-- ARGV: step, attempt, fence, tokens, cost
-- Returns {'booked'} or {'duplicate'} (no longer this delivery's attempt: nothing booked).
local run_key, step, attempt, fence = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local p = step_prefix(step)
if not runs_attempt(run_key, step, attempt, fence) then return {REPLY.duplicate} end
local tokens, cost = tonumber(ARGV[4]), tonumber(ARGV[5])
book_spend(run_key, p, KEYS[2], tokens, cost)
for _, key in ipairs(budget_windows(run_key, p)) do
  redis.call('HINCRBY', key, WINDOW_FIELD.tokens, tokens)
  redis.call('HINCRBYFLOAT', key, WINDOW_FIELD.cost, cost)
end
return {REPLY.booked}
