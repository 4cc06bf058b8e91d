--[[
  Shared helpers, prepended by the loader to every script that declares
  "-- @include common". Functions only: no key access outside the KEYS a script received.

  Inventory hash fields (see engine/keys.py):
    state  open | closed | deleted      thr   low-stock threshold (fraction < 1, else count)
    max    per-order ticket limit        cats  JSON array of category ids, in creation order
    date   the event's date (epoch ms; holds are refused from then on)
    t:<c> total  a:<c> available  h:<c> held  s:<c> sold  p:<c> unit price  n:<c> name
    low:<c> set while category c is at or below its low-stock limit
    mpb    tickets per buyer per event, held plus sold (0 or absent: no cap)
    w:<c>  waitlist entries of c still waiting    wl   the same, summed over the categories
    r:<c>  returned tickets of c set aside for its waitlist: part of a:<c>, never on sale to
           others (what anyone may hold is a:<c> - r:<c>, the published stock)

  Buyers hash (engine/keys.py buyers): user id -> tickets held plus sold in the event.
  Waitlist hash (keys.waitlist): e:<entryId> -> entry JSON, u:<userId>:<c> -> the user's
  latest entry id in c, seq -> the entry counter. Waitlist queue (keys.waitlist_queue):
  waiting entries as "<c>:<seq, 12 digits>:<entryId>" (score 0), so ZRANGEBYLEX on "<c>:"
  is c's list in FIFO order.
]]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- ISO-8601 UTC with milliseconds from epoch milliseconds (Howard Hinnant's civil_from_days).
local function iso(ms)
  local secs = math.floor(ms / 1000)
  local milli = ms - secs * 1000
  local days = math.floor(secs / 86400)
  local rem = secs - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', y, m, d,
    math.floor(rem / 3600), math.floor((rem % 3600) / 60), rem % 60, milli)
end

local function low_limit(thr, total)
  if thr >= 1 then return thr end
  return math.ceil(total * thr)
end

local function feed_add(feed, maxlen, name, data, user)
  if user then
    redis.call('XADD', feed, 'MAXLEN', '~', maxlen, '*', 'event', name, 'data',
      cjson.encode(data), 'user', user)
  else
    redis.call('XADD', feed, 'MAXLEN', '~', maxlen, '*', 'event', name, 'data', cjson.encode(data))
  end
end

-- A feed entry whose data is JSON text the caller built (for a payload cjson cannot
-- round-trip, such as an empty array).
local function feed_add_json(feed, maxlen, name, json)
  redis.call('XADD', feed, 'MAXLEN', '~', maxlen, '*', 'event', name, 'data', json)
end

-- Publish a category's new available stock and keep the low-stock flag in step:
-- ticket:almost-sold-out fires once per downward crossing of the limit. The caller passes
-- what it already read (total, threshold, whether the flag is set): a hot path saves reads.
local function stock_changed_known(inv, feed, maxlen, event_id, cat, avail, total, thr, flagged)
  feed_add(feed, maxlen, 'ticket:stock-update',
    {eventoId = event_id, categoriaId = cat, nuevoStock = avail})
  if total > 0 and thr > 0 and avail <= low_limit(thr, total) then
    if not flagged then
      redis.call('HSET', inv, 'low:' .. cat, 1)
      feed_add(feed, maxlen, 'ticket:almost-sold-out',
        {eventoId = event_id, categoriaId = cat, stockRestante = avail})
    end
  elseif flagged then
    redis.call('HDEL', inv, 'low:' .. cat)
  end
end

local function stock_changed(inv, feed, maxlen, event_id, cat, avail)
  local row = redis.call('HMGET', inv, 't:' .. cat, 'thr', 'low:' .. cat)
  stock_changed_known(inv, feed, maxlen, event_id, cat, avail,
    tonumber(row[1]) or 0, tonumber(row[2]) or 0, row[3] ~= false)
end

-- Record an order's new state: orders hash, WebSocket feed (user room) and writer log.
local function order_changed(orders, feed, log, maxlen, order, now)
  order.v = (order.v or 0) + 1
  order.actualizadoEn = now
  local json = cjson.encode(order)
  redis.call('HSET', orders, order.id, json)
  feed_add(feed, maxlen, 'order:status-change',
    {orderId = order.id, nuevoEstado = order.estado, expiraEn = iso(order.expiraEn)},
    order.usuarioId)
  redis.call('XADD', log, '*', 'order', json)
  return json
end

local function buyer_add(buyers, user, q)
  if q == 0 then return end
  if redis.call('HINCRBY', buyers, user, q) <= 0 then redis.call('HDEL', buyers, user) end
end

-- What a releasing script needs to offer returned tickets to a waitlist: its keys, the
-- fresh order ids (and their timer keys) the caller generated for offers, the offer TTL.
-- ``offers`` collects "<orderId> <userId> <deadline>" for the caller; ``pending`` is set
-- when the slots ran out while tickets were still set aside for an eligible entry.
local function waitlist_ctx(event_id, inv, orders, due, feed, log, buyers, wl, wlq, maxlen,
                            ttl, ids, timers)
  return {event_id = event_id, inv = inv, orders = orders, due = due, feed = feed, log = log,
    buyers = buyers, wl = wl, wlq = wlq, maxlen = maxlen, ttl = ttl, ids = ids,
    timers = timers, used = 0, offers = {}, pending = false}
end

local WAITLIST_SCAN = 16  -- entries looked at per category and call (O(small))

local function save_entry(x, entry)
  redis.call('HSET', x.wl, 'e:' .. entry.id, cjson.encode(entry))
end

-- Offer category c's set-aside tickets (r:c) to the head of its waitlist, FIFO: each
-- entry gets a RESERVED order of its quantity (the offer, TTL x.ttl) while the set-aside
-- tickets cover it. An entry whose buyer would pass the cap (mpb) is skipped and stays
-- waiting; a head asking for more than is set aside keeps the tickets set aside until
-- enough come back (strict FIFO). Tickets nobody eligible among the first WAITLIST_SCAN
-- entries can take go back on sale.
local function offer_category(x, c, now)
  local row = redis.call('HMGET', x.inv, 'a:' .. c, 'r:' .. c, 'w:' .. c, 'mpb', 'p:' .. c,
    'n:' .. c)
  local a, r, w = tonumber(row[1]) or 0, tonumber(row[2]) or 0, tonumber(row[3]) or 0
  local cap, price = tonumber(row[4]) or 0, tonumber(row[5]) or 0
  local on_sale, w0, keep = a - r, w, false
  if w > 0 and r > 0 then
    local members = redis.call('ZRANGEBYLEX', x.wlq, '[' .. c .. ':', '[' .. c .. ':~',
      'LIMIT', 0, WAITLIST_SCAN)
    for _, m in ipairs(members) do
      if r <= 0 then break end
      local id = string.match(m, ':([^:]+)$')
      local json = redis.call('HGET', x.wl, 'e:' .. id)
      local entry = json and cjson.decode(json)
      if not entry or entry.estado ~= 'ESPERANDO' then
        redis.call('ZREM', x.wlq, m)
      else
        local q = entry.cantidad
        local mine = tonumber(redis.call('HGET', x.buyers, entry.usuarioId)) or 0
        if cap > 0 and mine + q > cap then
          -- skipped: stays waiting, behind the entries that can buy
        elseif q > r then
          keep = true
          break
        elseif x.used >= #x.ids then
          keep = true
          x.pending = true
          break
        else
          x.used = x.used + 1
          local oid, deadline = x.ids[x.used], now + x.ttl
          a, r, w = a - q, r - q, w - 1
          redis.call('HINCRBY', x.inv, 'h:' .. c, q)
          buyer_add(x.buyers, entry.usuarioId, q)
          local order = {
            id = oid, eventoId = x.event_id, usuarioId = entry.usuarioId,
            tickets = {{categoriaId = c, nombre = row[6] or c, cantidad = q,
              precioUnitario = price}},
            total = math.floor(price * q * 100 + 0.5) / 100, estado = 'RESERVED',
            expiraEn = deadline, creadoEn = now, v = 0, wl = entry.id,
          }
          redis.call('ZADD', x.due, deadline, oid)
          redis.call('SET', x.timers[x.used], '1', 'PX', x.ttl)
          order_changed(x.orders, x.feed, x.log, x.maxlen, order, now)
          redis.call('ZREM', x.wlq, m)
          entry.estado, entry.ordenId, entry.ofertaExpiraEn = 'OFERTADO', oid, deadline
          save_entry(x, entry)
          feed_add(x.feed, x.maxlen, 'waitlist:offer', {eventoId = x.event_id,
            categoriaId = c, orderId = oid, expiraEn = iso(deadline)}, entry.usuarioId)
          x.offers[#x.offers + 1] = oid .. ' ' .. entry.usuarioId .. ' ' .. deadline
        end
      end
    end
  end
  if not keep then r = 0 end
  redis.call('HSET', x.inv, 'a:' .. c, a, 'r:' .. c, r, 'w:' .. c, w)
  if w ~= w0 then redis.call('HINCRBY', x.inv, 'wl', w - w0) end
  if a - r ~= on_sale then stock_changed(x.inv, x.feed, x.maxlen, x.event_id, c, a - r) end
end

-- Offer every category's set-aside tickets (those a call that ran out of slots left).
local function offer_pending(x, now)
  if (tonumber(redis.call('HGET', x.inv, 'wl')) or 0) <= 0 then return end
  for _, c in ipairs(cjson.decode(redis.call('HGET', x.inv, 'cats') or '[]')) do
    if (tonumber(redis.call('HGET', x.inv, 'r:' .. c)) or 0) > 0 then
      offer_category(x, c, now)
    end
  end
end

-- Return tickets of category c to stock: set aside for its waitlist while it has entries
-- waiting (offered at once by the caller's offer_category), else on sale.
local function restock(x, c, q)
  local row = redis.call('HMGET', x.inv, 'r:' .. c, 'w:' .. c)
  local avail = redis.call('HINCRBY', x.inv, 'a:' .. c, q)
  if (tonumber(row[2]) or 0) > 0 then
    redis.call('HINCRBY', x.inv, 'r:' .. c, q)
    return true
  end
  stock_changed(x.inv, x.feed, x.maxlen, x.event_id, c, avail - (tonumber(row[1]) or 0))
  return false
end

-- Return a RESERVED order's tickets to stock (and the buyer's allowance) and move it to
-- final_state; an offer's waitlist entry becomes CADUCADO (expired) or RETIRADO (declined).
-- Returned tickets go to the categories' waitlists first, in this same step.
-- The caller has checked that the order is RESERVED (release happens exactly once).
local function release(x, order, final_state, now)
  local touched, count = {}, 0
  for _, t in ipairs(order.tickets) do
    redis.call('HINCRBY', x.inv, 'h:' .. t.categoriaId, -t.cantidad)
    if restock(x, t.categoriaId, t.cantidad) then touched[#touched + 1] = t.categoriaId end
    count = count + t.cantidad
  end
  buyer_add(x.buyers, order.usuarioId, -count)
  redis.call('ZREM', x.due, order.id)
  order.estado = final_state
  local json = order_changed(x.orders, x.feed, x.log, x.maxlen, order, now)
  if order.wl then
    local raw = redis.call('HGET', x.wl, 'e:' .. order.wl)
    local entry = raw and cjson.decode(raw)
    if entry and entry.estado == 'OFERTADO' and entry.ordenId == order.id then
      entry.estado = final_state == 'EXPIRED' and 'CADUCADO' or 'RETIRADO'
      save_entry(x, entry)
    end
  end
  for _, c in ipairs(touched) do offer_category(x, c, now) end
  return json
end
