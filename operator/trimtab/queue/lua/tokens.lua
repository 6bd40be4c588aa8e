-- Publish text a streamed model reply added, as a `tokens` event on the run's event
-- stream, while the attempt is still this delivery's (a stale delivery's stream says
-- nothing) and the run's events exist (an expired run's stream is not made again,
-- without a TTL).
-- KEYS: run, events
-- ARGV: step, attempt, fence, text, now
-- Returns {'ok'} or {'duplicate'} (nothing published).
local run_key, events_key, step, attempt = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
if redis.call('EXISTS', events_key) == 0 or not runs_attempt(run_key, step, attempt, ARGV[3]) then
  return {REPLY.duplicate}
end
redis.call('XADD', events_key, '*', 'type', EVENT.tokens, 'step', step, 'attempt', attempt,
  'text', ARGV[4], 'at', ARGV[5])
return {REPLY.ok}
