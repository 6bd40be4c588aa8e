-- Complete a step: store its output, acknowledge it, and enqueue every dependent whose
-- dependencies are now all done -- one atomic step, so a crash can neither lose nor
-- duplicate a dependent. The last step completes the run.
-- A routed dependent's pool was chosen by the caller from the outputs it read at run
-- version `expected`; if the run moved on since, or the caller could not choose yet
-- (pool ''), nothing is written and 'conflict' tells it to read again and retry.
-- A step in review completes the same way when a reviewer approves it (msg_id '0-0'),
-- unless its run has failed meanwhile (another branch died): a failed run stays failed,
-- so the approval is refused ('terminal') and nothing changes. A running step of a
-- failed run is recorded (its tokens were spent), but starts nothing: its ready
-- dependents are cancelled, not enqueued, and resume.lua queues them with the rest.
-- KEYS: run, events, own stream, workflow stats, ended-runs outbox, dependent stream 1..n
-- ARGV: step, attempt, msg_id, group, fence, output, tokens, cost, now_ms, expected_version,
--       the step's compensation: its stream ('' when it has none), n, its task message
--       (n field/value items); then per dependent: name, pool, routed(0/1), nwait, the
--       other steps it waits on..., n, its first attempt's task message
-- A step with a compensation joins the run's list of them (_ending.lua): it is undone
-- should the run fail later, or at once if the run has failed already.
-- Which steps may become ready, and what each waits on, is the workflow's DAG
-- (trimtab.reconcile.agentworkflow.dag, sent by the caller); the script only reads, in
-- the same atomic step as the completion, whether those steps are done.
local run_key, events_key, stream = KEYS[1], KEYS[2], KEYS[3]
local step, attempt, msg_id, group, fence = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now = ARGV[9]
local p = step_prefix(step)
local stale, state = ack_if_stale(run_key, step, attempt, fence, stream, group, msg_id)
if stale then return {REPLY.duplicate} end
if state == STEP.review and given_up(run_key) then
  return {REPLY.terminal}
end

local function is_done(name)
  return redis.call('HGET', run_key, step_prefix(name) .. STEP_FIELD.state) == STEP.done
end

local undo_stream = ARGV[11]
local undo_message, i = take(ARGV, 13, tonumber(ARGV[12]))
local ready = {}
local version = redis.call('HGET', run_key, RUN_FIELD.version)
for k = 6, #KEYS do
  local name, pool, routed, nwait = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local all_done = redis.call('HGET', run_key, step_prefix(name) .. STEP_FIELD.state) == STEP.pending
  for d = 1, nwait do
    if all_done and not is_done(ARGV[i + 3 + d]) then all_done = false end
  end
  local message
  message, i = take(ARGV, i + 5 + nwait, tonumber(ARGV[i + 4 + nwait]))
  if all_done then
    if pool == '' or (routed == '1' and version ~= ARGV[10]) then return {REPLY.conflict} end
    ready[#ready + 1] = {k, name, pool, message}
  end
end

-- The spend is booked on the step's budget windows here, and on the run below.
release_hold(run_key, p, tonumber(ARGV[7]), tonumber(ARGV[8]))
if state == STEP.review then  -- approved by a reviewer: the run waits on one review fewer
  redis.call('HINCRBY', KEYS[4], WF_STAT.in_review, -1)
  if redis.call('HINCRBY', run_key, RUN_FIELD.in_review, -1) <= 0
      and redis.call('HGET', run_key, RUN_FIELD.status) == RUN.review then
    redis.call('HSET', run_key, RUN_FIELD.status, RUN.running)
  end
end
redis.call('HSET', run_key, p .. STEP_FIELD.state, STEP.done, p .. STEP_FIELD.output, ARGV[6],
  p .. STEP_FIELD.ended_ms, now)
-- The step's figures add to what its failed attempts' calls spent (book.lua).
book_spend(run_key, p, KEYS[4], ARGV[7], ARGV[8])
-- A reviewer's approval ends no attempt: the attempt's log entry was written on review.
if state ~= STEP.review then log_attempt(run_key, p, attempt, ATTEMPT.done, now) end
redis.call('HINCRBY', run_key, RUN_FIELD.version, 1)
local remaining = redis.call('HINCRBY', run_key, RUN_FIELD.remaining, -1)
redis.call('XACK', stream, group, msg_id)
redis.call('XADD', events_key, '*', 'type', EVENT.step_done, 'step', step, 'at', now)
if undo_stream ~= '' then add_undo(run_key, events_key, step, undo_stream, undo_message) end
local enqueued = {}
local failed = given_up(run_key)
for _, r in ipairs(ready) do
  local q = step_prefix(r[2])
  if failed then
    redis.call('HSET', run_key, q .. STEP_FIELD.state, STEP.cancelled, q .. STEP_FIELD.attempt, 1, q .. STEP_FIELD.pool, r[3])
  else
    redis.call('HSET', run_key, q .. STEP_FIELD.state, STEP.queued, q .. STEP_FIELD.attempt, 1, q .. STEP_FIELD.pool, r[3],
      q .. STEP_FIELD.queued_ms, now)
    enqueue(KEYS[r[1]], r[4])
    enqueued[#enqueued + 1] = r[2]
  end
end
if remaining == 0 then
  redis.call('HSET', run_key, RUN_FIELD.status, RUN.succeeded, RUN_FIELD.ended_ms, now)
  redis.call('HDEL', run_key, RUN_FIELD.undo)  -- a run that succeeded is never undone
  leave_admission(run_key, now)
  redis.call('HINCRBY', KEYS[4], WF_STAT.succeeded, 1)
  redis.call('XADD', events_key, '*', 'type', EVENT.run_done, 'status', RUN.succeeded, 'at', now)
  note_ended(KEYS[5], run_key, RUN.succeeded, now)
end
return {REPLY.ok, tostring(remaining), unpack(enqueued)}
