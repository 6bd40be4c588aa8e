-- Cancel a run on someone's request: it ends cancelled, whatever its steps are doing.
-- Every step not yet finished is cancelled (_ending.lua): no further step starts, a
-- running step's result is discarded (its worker also stops it: trimtab.worker.loop),
-- a step in review leaves the review queue. Completed steps that declared a
-- compensation are undone, as for a failed run. A waiting run leaves its admission
-- queue. Atomic, so no completion can slip in between.
-- KEYS: run, events, deadlines, workflow stats, review stream, ended-runs outbox
-- ARGV: run_id, reason, now_ms
-- Returns 'cancelled', 'ended' (it had ended already: nothing changes) or 'gone'.
local run_key, events_key, deadlines = KEYS[1], KEYS[2], KEYS[3]
local run_id, reason, now = ARGV[1], ARGV[2], ARGV[3]
local status = redis.call('HGET', run_key, RUN_FIELD.status)
if not status then return REPLY.gone end
if status ~= RUN.running and status ~= RUN.review and status ~= RUN.waiting then
  return REPLY.ended
end
redis.call('ZREM', deadlines, run_id)
cancel_unfinished(run_key, KEYS[4], KEYS[5])
redis.call('HSET', run_key, RUN_FIELD.error, reason)
redis.call('XADD', events_key, '*', 'type', EVENT.run_cancelled, 'reason', reason, 'at', now)
give_up_run(run_key, events_key, KEYS[4], KEYS[6], now, RUN.cancelled, WF_STAT.cancelled)
return REPLY.cancelled
