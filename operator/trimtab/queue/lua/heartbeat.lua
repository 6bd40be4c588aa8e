-- Keep this worker's steps from looking idle (their pending entries' idle time back to
-- 0), but only those it still owns: a delivery whose fence another worker's start has
-- replaced is left to that worker, so a worker that stalled and woke up cannot take
-- the message back from the one that reclaimed it.
-- KEYS: own stream, run 1..n
-- ARGV: group, consumer, then (msg_id, step, fence or '' when not started) per run
for k = 2, #KEYS do
  local at = 3 * (k - 2) + 3
  local msg_id, step, fence = ARGV[at], ARGV[at + 1], ARGV[at + 2]
  if fence == '' or redis.call('HGET', KEYS[k], step_prefix(step) .. STEP_FIELD.fence) == fence then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, msg_id, 'JUSTID')
  end
end
return #KEYS - 1
