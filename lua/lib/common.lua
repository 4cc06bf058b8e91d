--[[
  Shared helpers, prepended by the loader to every script that declares
  "-- @include common". Functions only: no key access outside the KEYS a script received.

  Inventory hash fields (see engine/keys.py):
    state  open | closed | deleted      thr   low-stock threshold (fraction < 1, else count)
    max    per-order ticket limit        cats  JSON array of category ids, in creation order
    date   the event's date (epoch ms; holds are refused from then on)
    t:<c> total  a:<c> available  h:<c> held  s:<c> sold  p:<c> unit price  n:<c> name
    low:<c> set while category c is at or below its low-stock limit
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

-- Return a RESERVED order's tickets to available stock and move it to final_state.
-- The caller has checked that the order is RESERVED (release happens exactly once).
local function release(inv, orders, due, feed, log, maxlen, order, final_state, now)
  for _, t in ipairs(order.tickets) do
    local c = t.categoriaId
    redis.call('HINCRBY', inv, 'h:' .. c, -t.cantidad)
    local avail = redis.call('HINCRBY', inv, 'a:' .. c, t.cantidad)
    stock_changed(inv, feed, maxlen, order.eventoId, c, avail)
  end
  redis.call('ZREM', due, order.id)
  order.estado = final_state
  return order_changed(orders, feed, log, maxlen, order, now)
end
