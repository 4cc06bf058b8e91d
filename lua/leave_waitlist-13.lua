--[[
  Leave a category's waitlist. A waiting entry leaves the list (the tickets set aside for
  it, if it was the head, go to the next entries or back on sale); an entry with an offer
  out cancels the offer's order, whose tickets go to the next entries at once. Either way
  the entry becomes RETIRADO.

  KEYS[1] inv   KEYS[2] orders   KEYS[3] due   KEYS[4] feed   KEYS[5] log   KEYS[6] buyers
  KEYS[7] waitlist   KEYS[8] waitlist queue   KEYS[9] the timer key of ARGV[4]'s order
  KEYS[10..13] timer keys of the four fresh order ids a waitlist offer may use

  ARGV[1] event id   ARGV[2] category id   ARGV[3] user id
  ARGV[4] the offer's order id as the caller read it ("" when it read none)
  ARGV[5] feed max length   ARGV[6] offer TTL (ms)   ARGV[7..10] four fresh order ids

  Returns {code, payload, offers, pending} (offers, pending: as expire_hold's):
     0  entry JSON   left
     3  order id     the entry's offer is another order than ARGV[4]: call again with it
    -4  category id  category not armed (removed: its waitlist closes with it, see
                     adjust_category; leaving it here would count a list that is gone)
   -20  ""           no live entry (ESPERANDO or OFERTADO) of this buyer in the category
]]
-- @include common
local inv, orders, due, feed, log = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local buyers, wl, wlq, offer_timer = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local event_id, c, user_id, offer_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local maxlen, ttl = tonumber(ARGV[5]), tonumber(ARGV[6])

if redis.call('HEXISTS', inv, 't:' .. c) == 0 then return {-4, c} end
local entry_id = redis.call('HGET', wl, 'u:' .. user_id .. ':' .. c)
local raw = entry_id and redis.call('HGET', wl, 'e:' .. entry_id)
local entry = raw and cjson.decode(raw)
if not entry or (entry.estado ~= 'ESPERANDO' and entry.estado ~= 'OFERTADO') then
  return {-20, ''}
end
local order
if entry.estado == 'OFERTADO' then
  if entry.ordenId ~= offer_id then return {3, entry.ordenId or ''} end
  local json = redis.call('HGET', orders, offer_id)
  order = json and cjson.decode(json)
end

-- All checks passed: first write below.
local x = waitlist_ctx(event_id, inv, orders, due, feed, log, buyers, wl, wlq, maxlen, ttl,
  {ARGV[7], ARGV[8], ARGV[9], ARGV[10]}, {KEYS[10], KEYS[11], KEYS[12], KEYS[13]})
local now = now_ms()
if order and order.estado == 'RESERVED' then
  redis.call('DEL', offer_timer)
  release(x, order, 'CANCELLED', now)  -- the entry becomes RETIRADO there
  entry = cjson.decode(redis.call('HGET', wl, 'e:' .. entry_id))
else
  if entry.estado == 'ESPERANDO' then
    redis.call('ZREM', wlq, entry.m)
    redis.call('HINCRBY', inv, 'w:' .. c, -1)
    redis.call('HINCRBY', inv, 'wl', -1)
  end
  entry.estado = 'RETIRADO'
  save_entry(x, entry)
  offer_category(x, c, now)
end
return {0, cjson.encode(entry), x.offers, x.pending and 1 or 0}
