--[[
  Sweep: claim a bounded batch of due holds of one event and release each (EXPIRED),
  returning their stock and appending the release events, all in this one script.
  The guarantee behind the keyspace notifications; idempotent like expire_hold.

  KEYS[1] inv   KEYS[2] orders   KEYS[3] due   KEYS[4] feed   KEYS[5] log
  ARGV[1] batch size   ARGV[2] feed max length

  Returns {released, more}: holds released now, and 1 when the batch was full (call again).
]]
-- @include common
local inv, orders, due, feed, log = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local batch, maxlen = tonumber(ARGV[1]), tonumber(ARGV[2])

local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, batch)
local released = 0
for _, id in ipairs(ids) do
  local json = redis.call('HGET', orders, id)
  local order = json and cjson.decode(json)
  if order and order.estado == 'RESERVED' then
    release(inv, orders, due, feed, log, maxlen, order, 'EXPIRED', now)
    released = released + 1
  else
    redis.call('ZREM', due, id)
  end
end
return {released, #ids == batch and 1 or 0}
