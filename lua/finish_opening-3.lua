--[[
  End the opening: the queue is ABIERTA and its seed revealed (semilla), so anyone can
  recompute the order of the join list.

  KEYS[1] queue   KEYS[2] waiting   KEYS[3] feed

  ARGV[1] owner   ARGV[2] event id   ARGV[3] feed max length

  Returns {code, payload}:
     0  ""   open now
    -44 ""   the caller no longer owns the opening
]]
-- @include common
-- @include queue
local q, waiting, feed = KEYS[1], KEYS[2], KEYS[3]
local owner, event_id, maxlen = ARGV[1], ARGV[2], tonumber(ARGV[3])

local head = redis.call('HMGET', q, 'st', 'lo', 'os')
if head[1] ~= 'OPENING' or head[2] ~= owner then return {-44, ''} end

-- All checks passed: first write below.
local now = now_ms()
redis.call('HSET', q, 'st', 'ABIERTA', 'rv', 1, 'oa', now, 'od', now - (tonumber(head[3]) or now))
redis.call('HDEL', q, 'lo', 'lu')
queue_update(q, feed, maxlen, event_id, 'ABIERTA', tonumber(redis.call('GET', waiting)) or 0,
  now, true)
return {0, ''}
