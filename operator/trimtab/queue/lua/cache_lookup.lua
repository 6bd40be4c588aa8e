-- Look up a cached step output and count the hit or miss on the run, in one round trip.
-- KEYS: cache entry, run
-- Returns the cached output (JSON) or false.
local found = redis.call('GET', KEYS[1])
redis.call('HINCRBY', KEYS[2], found and RUN_FIELD.cache_hits or RUN_FIELD.cache_misses, 1)
return found
