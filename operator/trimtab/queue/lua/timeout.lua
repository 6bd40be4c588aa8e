-- End a run that reached its deadline while a step waited (on a queue no worker serves,
-- in its backoff, for a reviewer) or ran: the run fails, timed out, and every step not
-- yet finished is cancelled (_ending.lua). A run that already ended is only taken off
-- the deadline set. Atomic, so a completion cannot slip in between.
-- KEYS: run, events, deadlines, workflow stats, review stream, ended-runs outbox
-- ARGV: run_id, reason, now_ms
-- Returns 'timed-out' or 'gone' (expired, or ended before its deadline).
local run_key, events_key, deadlines = KEYS[1], KEYS[2], KEYS[3]
local run_id, reason, now = ARGV[1], ARGV[2], ARGV[3]
redis.call('ZREM', deadlines, run_id)
local status = redis.call('HGET', run_key, RUN_FIELD.status)
if status ~= RUN.running and status ~= RUN.review and status ~= RUN.waiting then
  return REPLY.gone
end
cancel_unfinished(run_key, KEYS[4], KEYS[5])
redis.call('HSET', run_key, RUN_FIELD.error, reason)
redis.call('XADD', events_key, '*', 'type', EVENT.run_timed_out, 'reason', reason, 'at', now)
fail_run(run_key, events_key, KEYS[4], KEYS[6], now)
return REPLY.timed_out
