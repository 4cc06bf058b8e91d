--[[
  Confirm a held order: its tickets move from held to sold (the buyer's count keeps them).
  A waitlist offer's entry becomes COMPRADO.

  KEYS[1] inv   KEYS[2] orders   KEYS[3] due   KEYS[4] timer   KEYS[5] feed   KEYS[6] log
  KEYS[7] waitlist

  ARGV[1] order id      ARGV[2] user id       ARGV[3] "1" when the caller is an admin
  ARGV[4] payment method                      ARGV[5] transaction id
  ARGV[6] feed max length

  Returns {code, payload}:
     0  order JSON   confirmed now
     1  order JSON   already confirmed with this transaction id: nothing done
    -7  ""           no such order (or not the caller's)
    -8  order JSON   expired (already released, or past its deadline: the caller releases it)
    -9  order JSON   cancelled
   -10  order JSON   already confirmed with another transaction id
]]
-- @include common
local inv, orders, due, timer, feed, log = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local wl = KEYS[7]
local order_id, user_id, is_admin = ARGV[1], ARGV[2], ARGV[3] == '1'
local method, txid, maxlen = ARGV[4], ARGV[5], tonumber(ARGV[6])

local json = redis.call('HGET', orders, order_id)
if not json then return {-7, ''} end
local order = cjson.decode(json)
if order.usuarioId ~= user_id and not is_admin then return {-7, ''} end
if order.estado == 'CONFIRMED' then
  if order.transactionId == txid then return {1, json} end
  return {-10, json}
end
if order.estado == 'EXPIRED' then return {-8, json} end
if order.estado == 'CANCELLED' then return {-9, json} end
local now = now_ms()
if now >= order.expiraEn then return {-8, json} end

for _, t in ipairs(order.tickets) do
  redis.call('HINCRBY', inv, 'h:' .. t.categoriaId, -t.cantidad)
  redis.call('HINCRBY', inv, 's:' .. t.categoriaId, t.cantidad)
end
redis.call('ZREM', due, order_id)
redis.call('DEL', timer)
order.estado = 'CONFIRMED'
order.confirmadoEn = now
order.metodoPago = method
order.transactionId = txid
if order.wl then
  local raw = redis.call('HGET', wl, 'e:' .. order.wl)
  local entry = raw and cjson.decode(raw)
  if entry and entry.ordenId == order_id then
    entry.estado = 'COMPRADO'
    redis.call('HSET', wl, 'e:' .. order.wl, cjson.encode(entry))
  end
end
return {0, order_changed(orders, feed, log, maxlen, order, now)}
