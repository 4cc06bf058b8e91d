--[[
  Cancel a held order at its owner's (or an admin's) request: stock returns at once.

  KEYS[1] inv   KEYS[2] orders   KEYS[3] due   KEYS[4] timer   KEYS[5] feed   KEYS[6] log

  ARGV[1] order id   ARGV[2] user id   ARGV[3] "1" when the caller is an admin
  ARGV[4] feed max length

  Returns {code, payload}:
     0  order JSON   cancelled now
     1  order JSON   already cancelled: nothing done
    -7  ""           no such order (or not the caller's)
    -8  order JSON   already expired
   -10  order JSON   already confirmed
]]
-- @include common
local inv, orders, due, timer, feed, log = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local order_id, user_id, is_admin, maxlen = ARGV[1], ARGV[2], ARGV[3] == '1', tonumber(ARGV[4])

local json = redis.call('HGET', orders, order_id)
if not json then return {-7, ''} end
local order = cjson.decode(json)
if order.usuarioId ~= user_id and not is_admin then return {-7, ''} end
if order.estado == 'CANCELLED' then return {1, json} end
if order.estado == 'EXPIRED' then return {-8, json} end
if order.estado == 'CONFIRMED' then return {-10, json} end

redis.call('DEL', timer)
return {0, release(inv, orders, due, feed, log, maxlen, order, 'CANCELLED', now_ms())}
