-- Take up to `count` new entries for this consumer from a pool's priority levels
-- (trimtab.queue.levels): each level its share first, then what is still free from the
-- levels highest first, so a level with nothing waiting gives its turns to the others.
-- One round trip however many levels; a script's XREADGROUP never blocks.
-- KEYS: the level streams, highest first
-- ARGV: group, consumer, count, then one share per stream
-- Returns {stream index, entry id, {field, value, ...}} per entry taken.
local group, consumer, free = ARGV[1], ARGV[2], tonumber(ARGV[3])
local taken = {}
local function take(k, n)
  if n <= 0 then return 0 end
  local got = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', n,
    'STREAMS', KEYS[k], '>')
  if not got then return 0 end
  for _, entry in ipairs(got[1][2]) do taken[#taken + 1] = {k, entry[1], entry[2]} end
  return #got[1][2]
end
for k = 1, #KEYS do free = free - take(k, math.min(free, tonumber(ARGV[3 + k]))) end
for k = 1, #KEYS do free = free - take(k, free) end
return taken
