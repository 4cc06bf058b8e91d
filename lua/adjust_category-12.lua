--[[
  Create, resize or remove one category of an armed event, atomically against live holds.
  Resizing moves the difference into (or out of) available stock; it may not go below
  what is already held plus sold. Removing is allowed only when nothing is held or sold
  (a waitlist offer out is a hold); it closes the category's waitlist in this same step:
  its counters go, and each waiting entry leaves the list and its buyer is told
  (waitlist:closed on their channel), at most WAITLIST_CLOSE entries per call. More
  waiters than that: the caller calls again (remove the same category) until none is left;
  such a call finds the category gone and closes the next entries of its list.
  Tickets a raised total adds go first to the category's waitlist (lib/common.lua
  offer_category), in this same step.

  Every change is published on the event's feed, for the event room, in this same step:
    created or changed: event:update {eventoId, cambios: {categoria: {id, nombre, precio,
      cantidadTotal, beneficios, disponible}}} (the category as GET .../categories shows
      it, disponible as of this entry), then the stock entries of the change (a new
      category's stock, a resized one's new stock; a rename or a new price alone has none)
    removed: ticket:stock-update {nuevoStock = 0}, the waitlist:closed entries of its first
      waiters, then event:update {eventoId, cambios: {categoriaEliminada: <cat id>}}; a
      later call that only closes more of its waitlist publishes no event:update

  KEYS[1] inv   KEYS[2] feed   KEYS[3] orders   KEYS[4] due   KEYS[5] log   KEYS[6] buyers
  KEYS[7] waitlist   KEYS[8] waitlist queue
  KEYS[9..12] timer keys of the four fresh order ids a waitlist offer may use
  ARGV[1] event id   ARGV[2] category id   ARGV[3] new total, or -1 to remove
  ARGV[4] unit price   ARGV[5] name   ARGV[6] feed max length   ARGV[7] offer TTL (ms)
  ARGV[8..11] four fresh order ids for waitlist offers
  ARGV[12] the category's benefits, a JSON array of strings ("[]" when absent): published
           in its event:update only (Redis keeps no benefits; the store does)

  Returns {code, payload, offers, pending} (offers, pending: as expire_hold's):
     0  available      created or resized (payload: the new stock on sale)
     2  count          removed, or more of a removed category's waitlist closed
                       (payload: its waiting entries still to close: call again while > 0)
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
if new_total >= 0 and not tonumber(price) then return {-6, ''} end
local benefits = ARGV[12] or '[]'
local parsed_ok, parsed = pcall(cjson.decode, benefits)
if not parsed_ok or type(parsed) ~= 'table' or string.sub(benefits, 1, 1) ~= '[' then
  return {-6, ''}
end
if not redis.call('HGET', inv, 'state') then return {-1, ''} end

local row = redis.call('HMGET', inv, 't:' .. c, 'h:' .. c, 's:' .. c, 'r:' .. c, 'w:' .. c)
local cats = cjson.decode(redis.call('HGET', inv, 'cats') or '[]')

local WAITLIST_CLOSE = 100  -- waiting entries a removal closes per call (O(small))
local wl, wlq = KEYS[7], KEYS[8]
local lo, hi = '[' .. c .. ':', '[' .. c .. ':~'  -- c's part of the waitlist queue

-- event:update for the created or changed category c, with disponible = avail (what is
-- on sale as of this entry). Built as text: cjson would encode an empty benefits array
-- as {} (Redis 6.2's cjson has no array metatable), so the validated ARGV text goes in.
local function category_update(avail)
  local enc = cjson.encode
  feed_add_json(feed, maxlen, 'event:update', '{"eventoId":' .. enc(event_id)
    .. ',"cambios":{"categoria":{"id":' .. enc(c) .. ',"nombre":' .. enc(name)
    .. ',"precio":' .. enc(tonumber(price)) .. ',"cantidadTotal":' .. enc(new_total)
    .. ',"beneficios":' .. benefits .. ',"disponible":' .. enc(avail) .. '}}}')
end

-- The next WAITLIST_CLOSE waiting entries of removed category c leave its list: each
-- entry goes (the category, its only reader, is gone) and its buyer is told. Returns how
-- many waiting entries of c are left after these.
local function close_waitlist()
  local members = redis.call('ZRANGEBYLEX', wlq, lo, hi, 'LIMIT', 0, WAITLIST_CLOSE)
  for _, m in ipairs(members) do
    local id = string.match(m, ':([^:]+)$')
    local json = redis.call('HGET', wl, 'e:' .. id)
    local entry = json and cjson.decode(json)
    if entry and entry.estado == 'ESPERANDO' then
      local mine = 'u:' .. entry.usuarioId .. ':' .. c
      if redis.call('HGET', wl, mine) == id then redis.call('HDEL', wl, mine) end
      redis.call('HDEL', wl, 'e:' .. id)
      feed_add(feed, maxlen, 'waitlist:closed',
        {eventoId = event_id, categoriaId = c, motivo = 'category_removed'}, entry.usuarioId)
    end
  end
  if #members > 0 then redis.call('ZREM', wlq, unpack(members)) end
  return redis.call('ZLEXCOUNT', wlq, lo, hi)
end

if new_total == -1 then
  local waiting = tonumber(row[5]) or 0
  if not row[1] then
    -- Gone already: a removal that left waiters to close goes on, else unknown.
    if redis.call('ZLEXCOUNT', wlq, lo, hi) == 0 then return {-4, c} end
    -- All checks passed: first write below.
    if row[5] then
      redis.call('HDEL', inv, 'w:' .. c)
      redis.call('HINCRBY', inv, 'wl', -waiting)
    end
    return {2, tostring(close_waitlist())}
  end
  local committed = tonumber(row[2]) + tonumber(row[3])
  if committed > 0 then return {-13, tostring(committed)} end

  -- All checks passed: first write below.
  redis.call('HDEL', inv, 't:' .. c, 'a:' .. c, 'h:' .. c, 's:' .. c, 'p:' .. c, 'n:' .. c,
    'low:' .. c, 'r:' .. c, 'w:' .. c)
  if waiting ~= 0 then redis.call('HINCRBY', inv, 'wl', -waiting) end
  local kept = {}
  for _, x in ipairs(cats) do if x ~= c then kept[#kept + 1] = x end end
  redis.call('HSET', inv, 'cats', #kept > 0 and cjson.encode(kept) or '[]')
  feed_add(feed, maxlen, 'ticket:stock-update', {eventoId = event_id, categoriaId = c, nuevoStock = 0})
  local left = close_waitlist()
  feed_add(feed, maxlen, 'event:update', {eventoId = event_id, cambios = {categoriaEliminada = c}})
  return {2, tostring(left)}
end

if not row[1] then
  redis.call('HSET', inv, 't:' .. c, new_total, 'a:' .. c, new_total, 'h:' .. c, 0, 's:' .. c, 0,
    'p:' .. c, price, 'n:' .. c, name)
  cats[#cats + 1] = c
  redis.call('HSET', inv, 'cats', cjson.encode(cats))
  category_update(new_total)
  stock_changed(inv, feed, maxlen, event_id, c, new_total)
  return {0, new_total}
end

local committed = tonumber(row[2]) + tonumber(row[3])
if new_total < committed then return {-12, tostring(committed)} end
local old_total = tonumber(row[1])
redis.call('HSET', inv, 't:' .. c, new_total, 'p:' .. c, price, 'n:' .. c, name)
if new_total > old_total and (tonumber(row[5]) or 0) > 0 then
  local a = redis.call('HINCRBY', inv, 'a:' .. c, new_total - old_total)
  local r = redis.call('HINCRBY', inv, 'r:' .. c, new_total - old_total)
  category_update(a - r)  -- the new tickets are set aside: the offers below may take them
  offer_category(x, c, now_ms())
  local after = redis.call('HMGET', inv, 'a:' .. c, 'r:' .. c)
  return {0, tonumber(after[1]) - (tonumber(after[2]) or 0), x.offers, x.pending and 1 or 0}
end
local avail = redis.call('HINCRBY', inv, 'a:' .. c, new_total - old_total)
local aside = math.min(tonumber(row[4]) or 0, avail)
if aside ~= (tonumber(row[4]) or 0) then redis.call('HSET', inv, 'r:' .. c, aside) end
category_update(avail - aside)
if new_total ~= old_total then stock_changed(inv, feed, maxlen, event_id, c, avail - aside) end
return {0, avail - aside, {}, 0}
