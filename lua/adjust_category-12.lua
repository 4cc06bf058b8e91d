--[[
  Create, resize or remove one category of an armed event, atomically against live holds.
  Resizing moves the difference into (or out of) available stock; it may not go below
  what is already held plus sold. Removing is allowed only when nothing is held or sold.
  Tickets a raised total adds go first to the category's waitlist (lib/common.lua
  offer_category), in this same step.

  KEYS[1] inv   KEYS[2] feed   KEYS[3] orders   KEYS[4] due   KEYS[5] log   KEYS[6] buyers
  KEYS[7] waitlist   KEYS[8] waitlist queue
  KEYS[9..12] timer keys of the four fresh order ids a waitlist offer may use
  ARGV[1] event id   ARGV[2] category id   ARGV[3] new total, or -1 to remove
  ARGV[4] unit price   ARGV[5] name   ARGV[6] feed max length   ARGV[7] offer TTL (ms)
  ARGV[8..11] four fresh order ids for waitlist offers

  Returns {code, payload, offers, pending} (offers, pending: as expire_hold's):
     0  available      created or resized (payload: the new stock on sale)
     2  ""             removed
    -1  ""             event not armed
    -4  cat id         category not found (resize or remove of an unknown category)
    -6  ""             malformed request
   -12  held+sold      new total below what is held plus sold
   -13  held+sold      category still has holds or sales
]]
-- @include common
local inv, feed = KEYS[1], KEYS[2]
local event_id, c, new_total = ARGV[1], ARGV[2], tonumber(ARGV[3])
local price, name, maxlen = ARGV[4], ARGV[5], tonumber(ARGV[6])
local x = waitlist_ctx(event_id, inv, KEYS[3], KEYS[4], feed, KEYS[5], KEYS[6], KEYS[7], KEYS[8],
  maxlen, tonumber(ARGV[7]), {ARGV[8], ARGV[9], ARGV[10], ARGV[11]},
  {KEYS[9], KEYS[10], KEYS[11], KEYS[12]})
if not new_total or new_total < -1 or new_total ~= math.floor(new_total) then return {-6, ''} end
if not redis.call('HGET', inv, 'state') then return {-1, ''} end

local row = redis.call('HMGET', inv, 't:' .. c, 'h:' .. c, 's:' .. c, 'r:' .. c, 'w:' .. c)
local cats = cjson.decode(redis.call('HGET', inv, 'cats') or '[]')

if new_total == -1 then
  if not row[1] then return {-4, c} end
  local committed = tonumber(row[2]) + tonumber(row[3])
  if committed > 0 then return {-13, tostring(committed)} end
  redis.call('HDEL', inv, 't:' .. c, 'a:' .. c, 'h:' .. c, 's:' .. c, 'p:' .. c, 'n:' .. c,
    'low:' .. c, 'r:' .. c)
  local kept = {}
  for _, x in ipairs(cats) do if x ~= c then kept[#kept + 1] = x end end
  redis.call('HSET', inv, 'cats', cjson.encode(kept))
  feed_add(feed, maxlen, 'ticket:stock-update', {eventoId = event_id, categoriaId = c, nuevoStock = 0})
  return {2, ''}
end

if not row[1] then
  redis.call('HSET', inv, 't:' .. c, new_total, 'a:' .. c, new_total, 'h:' .. c, 0, 's:' .. c, 0,
    'p:' .. c, price, 'n:' .. c, name)
  cats[#cats + 1] = c
  redis.call('HSET', inv, 'cats', cjson.encode(cats))
  stock_changed(inv, feed, maxlen, event_id, c, new_total)
  return {0, new_total}
end

local committed = tonumber(row[2]) + tonumber(row[3])
if new_total < committed then return {-12, tostring(committed)} end
local old_total = tonumber(row[1])
redis.call('HSET', inv, 't:' .. c, new_total, 'p:' .. c, price, 'n:' .. c, name)
if new_total > old_total and (tonumber(row[5]) or 0) > 0 then
  redis.call('HINCRBY', inv, 'a:' .. c, new_total - old_total)
  redis.call('HINCRBY', inv, 'r:' .. c, new_total - old_total)
  offer_category(x, c, now_ms())
  local after = redis.call('HMGET', inv, 'a:' .. c, 'r:' .. c)
  return {0, tonumber(after[1]) - (tonumber(after[2]) or 0), x.offers, x.pending and 1 or 0}
end
local avail = redis.call('HINCRBY', inv, 'a:' .. c, new_total - old_total)
local aside = math.min(tonumber(row[4]) or 0, avail)
if aside ~= (tonumber(row[4]) or 0) then redis.call('HSET', inv, 'r:' .. c, aside) end
if new_total ~= old_total then stock_changed(inv, feed, maxlen, event_id, c, avail - aside) end
return {0, avail - aside, {}, 0}
