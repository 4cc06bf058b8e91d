--[[
  Join a category's waitlist: only while none of its tickets is on sale (available less
  what is set aside for the list is 0). One live entry (ESPERANDO or OFERTADO) per buyer
  and category; a finished one (CADUCADO, COMPRADO, RETIRADO) is replaced, at the back.

  KEYS[1] inv   KEYS[2] waitlist   KEYS[3] waitlist queue   KEYS[4] buyers
  ARGV[1] event id   ARGV[2] category id   ARGV[3] user id   ARGV[4] quantity
  ARGV[5] the new entry's id

  Returns {code, payload, position}:
     0  entry JSON   joined (position: 1-based place in the category's list)
    -1  ""           event not armed
    -2  state        event not on sale
    -3  max          quantity above the per-order limit
    -4  category id  category not found
    -6  ""           malformed request
   -16  date (ms)    the event has taken place
   -17  tickets left the buyer cap would be passed
   -18  on sale      tickets of the category are on sale: buy them instead
   -19  entry JSON   the buyer already has a live entry in this category
]]
-- @include common
local inv, wl, wlq, buyers = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local event_id, c, user_id, q, entry_id = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]

local head = redis.call('HMGET', inv, 'state', 'max', 'date', 'mpb', 't:' .. c, 'a:' .. c,
  'r:' .. c)
if not head[1] then return {-1, ''} end
if head[1] ~= 'open' then return {-2, head[1]} end
local now = now_ms()
if tonumber(head[3]) and now >= tonumber(head[3]) then return {-16, head[3]} end
if not q or q < 1 or q ~= math.floor(q) then return {-6, ''} end
local limit = tonumber(head[2]) or 0
if limit > 0 and q > limit then return {-3, tostring(limit)} end
if not head[5] then return {-4, c} end
local on_sale = (tonumber(head[6]) or 0) - (tonumber(head[7]) or 0)
if on_sale > 0 then return {-18, tostring(on_sale)} end
local current = redis.call('HGET', wl, 'u:' .. user_id .. ':' .. c)
if current then
  local raw = redis.call('HGET', wl, 'e:' .. current)
  local entry = raw and cjson.decode(raw)
  if entry and (entry.estado == 'ESPERANDO' or entry.estado == 'OFERTADO') then
    return {-19, raw}
  end
end
local cap = tonumber(head[4]) or 0
if cap > 0 then
  local mine = tonumber(redis.call('HGET', buyers, user_id)) or 0
  if mine + q > cap then return {-17, tostring(math.max(0, cap - mine))} end
end

-- All checks passed: first write below.
local seq = redis.call('HINCRBY', wl, 'seq', 1)
local member = c .. ':' .. string.format('%012d', seq) .. ':' .. entry_id
local entry = {id = entry_id, eventoId = event_id, categoriaId = c, usuarioId = user_id,
  cantidad = q, estado = 'ESPERANDO', creadoEn = now, m = member}
local json = cjson.encode(entry)
redis.call('HSET', wl, 'e:' .. entry_id, json, 'u:' .. user_id .. ':' .. c, entry_id)
redis.call('ZADD', wlq, 0, member)
redis.call('HINCRBY', inv, 'w:' .. c, 1)
redis.call('HINCRBY', inv, 'wl', 1)
local ahead = redis.call('ZLEXCOUNT', wlq, '[' .. c .. ':', '(' .. member)
return {0, json, ahead + 1}
