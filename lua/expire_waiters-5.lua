--[[
  Buyers silent for 2 x latidoSegundos become PERDIDO: out of the line (or the pre-queue's
  join list, before the opening starts), out of the waiting count and the estimate.
  Bounded: at most ARGV[1] buyers per call.

  KEYS[1] queue   KEYS[2] waiting   KEYS[3] pre   KEYS[4] line   KEYS[5] heartbeats

  ARGV[1] batch size

  Returns {buyers lost now, 1 if more are due else 0}
]]
-- @include common
-- @include queue
local q, waiting, pre, line, hbs = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local batch = tonumber(ARGV[1])

local head = redis.call('HMGET', q, 'st', 'hb')
local st = head[1]
if not st then return {0, 0} end
local cutoff = now_ms() - 2000 * (tonumber(head[2]) or 30)
local due = redis.call('ZRANGEBYSCORE', hbs, '-inf', cutoff, 'LIMIT', 0, batch + 1)
local more = #due > batch and 1 or 0

-- Writes from here on (nothing is refused).
local lost = 0
for i = 1, math.min(#due, batch) do
  local user = due[i]
  redis.call('ZREM', hbs, user)
  redis.call('ZREM', line, user)
  if st == 'PRE' then redis.call('ZREM', pre, user) end
  local place = place_of(q, user)
  if place and place.e == 'ESPERANDO' then
    place.e = 'PERDIDO'
    save_place(q, user, place)
    lost = lost + 1
  end
end
if lost > 0 then
  redis.call('DECRBY', waiting, lost)
  redis.call('HINCRBY', q, 'lost', lost)
end
return {lost, more}
