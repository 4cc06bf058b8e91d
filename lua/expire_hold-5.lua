--[[
  Release one hold whose deadline has passed (the keyspace-notification fast path).
  Idempotent: a hold already confirmed, cancelled or released is left alone.

  KEYS[1] inv   KEYS[2] orders   KEYS[3] due   KEYS[4] feed   KEYS[5] log
  ARGV[1] order id   ARGV[2] feed max length

  Returns {code, payload}:
     1  order JSON   released now (EXPIRED)
     0  ""           nothing to do (unknown order, or no longer RESERVED)
     2  ""           not due yet
]]
-- @include common
local inv, orders, due, feed, log = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local order_id, maxlen = ARGV[1], tonumber(ARGV[2])

local json = redis.call('HGET', orders, order_id)
if not json then
  redis.call('ZREM', due, order_id)
  return {0, ''}
end
local order = cjson.decode(json)
if order.estado ~= 'RESERVED' then
  redis.call('ZREM', due, order_id)
  return {0, ''}
end
local now = now_ms()
if now < order.expiraEn then return {2, ''} end
return {1, release(inv, orders, due, feed, log, maxlen, order, 'EXPIRED', now)}
