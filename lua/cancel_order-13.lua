--[[
  Cancel a held order at its owner's (or an admin's) request: stock returns at once (to
  the categories' waitlists first, lib/common.lua release).

  KEYS[1] inv   KEYS[2] orders   KEYS[3] due   KEYS[4] timer   KEYS[5] feed   KEYS[6] log
  KEYS[7] buyers   KEYS[8] waitlist   KEYS[9] waitlist queue
  KEYS[10..13] timer keys of the four fresh order ids a waitlist offer may use

  ARGV[1] order id   ARGV[2] user id   ARGV[3] "1" when the caller is an admin
  ARGV[4] feed max length   ARGV[5] event id   ARGV[6] offer TTL (ms)
  ARGV[7..10] four fresh order ids for waitlist offers

  Returns {code, payload, offers, pending} (offers, pending: as expire_hold):
     0  order JSON   cancelled now
     1  order JSON   already cancelled: nothing done
    -7  ""           no such order (or not the caller's)
    -8  order JSON   already expired
   -10  order JSON   already confirmed
]]
-- @include common
local inv, orders, due, timer, feed, log = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local buyers, wl, wlq = KEYS[7], KEYS[8], KEYS[9]
local order_id, user_id, is_admin, maxlen = ARGV[1], ARGV[2], ARGV[3] == '1', tonumber(ARGV[4])
local event_id, ttl = ARGV[5], tonumber(ARGV[6])

local json = redis.call('HGET', orders, order_id)
if not json then return {-7, ''} end
local order = cjson.decode(json)
if order.usuarioId ~= user_id and not is_admin then return {-7, ''} end
if order.estado == 'CANCELLED' then return {1, json} end
if order.estado == 'EXPIRED' then return {-8, json} end
if order.estado == 'CONFIRMED' then return {-10, json} end

redis.call('DEL', timer)
local x = waitlist_ctx(event_id, inv, orders, due, feed, log, buyers, wl, wlq, maxlen, ttl,
  {ARGV[7], ARGV[8], ARGV[9], ARGV[10]}, {KEYS[10], KEYS[11], KEYS[12], KEYS[13]})
local out = release(x, order, 'CANCELLED', now_ms())
return {0, out, x.offers, x.pending and 1 or 0}
