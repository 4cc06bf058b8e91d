--[[
  Release one hold whose deadline has passed (the keyspace-notification fast path).
  Idempotent: a hold already confirmed, cancelled or released is left alone. Its tickets
  go first to the waitlists of their categories (lib/common.lua release).

  KEYS[1] inv   KEYS[2] orders   KEYS[3] due   KEYS[4] feed   KEYS[5] log
  KEYS[6] buyers   KEYS[7] waitlist   KEYS[8] waitlist queue
  KEYS[9..12] timer keys of the four fresh order ids a waitlist offer may use

  ARGV[1] order id   ARGV[2] feed max length   ARGV[3] event id   ARGV[4] offer TTL (ms)
  ARGV[5..8] four fresh order ids for waitlist offers (KEYS[9..12] are their timers)

  Returns {code, payload, offers, pending}:
     1  order JSON   released now (EXPIRED)
     0  ""           nothing to do (unknown order, or no longer RESERVED)
     2  ""           not due yet
  offers: "<orderId> <userId> <deadline ms>" per waitlist offer made; pending: 1 when
  tickets stay set aside for an entry and the offer slots ran out (call offer_waitlist).
]]
-- @include common
local inv, orders, due, feed, log = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local buyers, wl, wlq = KEYS[6], KEYS[7], KEYS[8]
local order_id, maxlen, event_id, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])

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
local x = waitlist_ctx(event_id, inv, orders, due, feed, log, buyers, wl, wlq, maxlen, ttl,
  {ARGV[5], ARGV[6], ARGV[7], ARGV[8]}, {KEYS[9], KEYS[10], KEYS[11], KEYS[12]})
local out = release(x, order, 'EXPIRED', now)
return {1, out, x.offers, x.pending and 1 or 0}
