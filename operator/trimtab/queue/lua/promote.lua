-- Move due retries from the delayed set onto the stream; safe to run from every worker.
-- KEYS: delayed zset, stream    ARGV: now_ms, limit
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  local m = cjson.decode(member)
  redis.call('XADD', KEYS[2], '*', 'ns', m.ns, 'run', m.run, 'step', m.step, 'att', m.att,
    'wf', m.wf, 'gen', m.gen, 'enq', ARGV[1])
  redis.call('ZREM', KEYS[1], member)
end
return #due
