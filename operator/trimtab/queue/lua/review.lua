-- Park a step for human review: the output it produced (or the last one rejected) and
-- why go onto the namespace's review stream; the run waits, its TTL untouched, until a
-- reviewer approves, edits or rejects it. Atomic with the acknowledgement, so a step
-- is never both in review and on a queue.
-- KEYS: run, events, own stream, review stream, workflow stats
-- ARGV: step, attempt, msg_id, group, fence, reason, now_ms, the attempt's tokens and
--       cost, then the review entry's field/value pairs (trimtab.queue.review.entry_fields)
-- Returns {'parked', review id}, {'duplicate'}, or {'full'} when the namespace already
-- has REVIEWS_MAX steps waiting (nothing written: the caller dead-letters the step).
local run_key, events_key, stream, reviews = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local step, attempt, msg_id, group, fence = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local reason, now = ARGV[6], ARGV[7]
local p = step_prefix(step)
local entry = take(ARGV, 10, #ARGV - 9)
local stale, state = ack_if_stale(run_key, step, attempt, fence, stream, group, msg_id)
if stale then return {REPLY.duplicate} end
if redis.call('XLEN', reviews) >= REVIEWS_MAX then return {REPLY.full} end
settle_hold(run_key, p, tonumber(ARGV[8]), tonumber(ARGV[9]))
log_attempt(run_key, p, attempt, ATTEMPT.review, now, nil, tonumber(ARGV[8]), tonumber(ARGV[9]))
redis.call('HSET', run_key, p .. STEP_FIELD.state, STEP.review, p .. STEP_FIELD.error, reason)
-- A run another branch failed stays failed: the entry is kept for the record, and
-- approving it is refused (complete.lua).
if redis.call('HGET', run_key, RUN_FIELD.status) == RUN.running then
  redis.call('HSET', run_key, RUN_FIELD.status, RUN.review)
end
redis.call('HINCRBY', run_key, RUN_FIELD.in_review, 1)
local id = redis.call('XADD', reviews, '*', unpack(entry))
redis.call('HSET', run_key, p .. STEP_FIELD.review, id)
redis.call('HINCRBY', KEYS[5], WF_STAT.in_review, 1)
redis.call('XACK', stream, group, msg_id)
redis.call('XADD', events_key, '*', 'type', EVENT.step_review, 'step', step, 'reason', reason,
  'review', id, 'at', now)
return {REPLY.parked, id}
