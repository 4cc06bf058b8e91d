--[[
  Join an event's admission queue: one place per buyer. During the pre-queue (from
  abreEn - preColaMinutos until the opening) the buyer joins the join list, ordered at the
  opening; afterwards at the back of the line. Joining again while in is a heartbeat and
  changes nothing else; a buyer PERDIDO (lost, or whose admission expired) joins again at
  the back.

  KEYS[1] queue   KEYS[2] waiting   KEYS[3] pre   KEYS[4] line   KEYS[5] heartbeats

  ARGV[1] user id

  Returns {code, place JSON, rank in line (-1 if not in it)}:
     0  place   joined now
     1  place   already in: nothing changed but the heartbeat
    -40 ""      no queue for this event
    -41 starts  the pre-queue has not started (payload: when it starts, epoch ms)
]]
-- @include common
-- @include queue
local q, waiting, pre, line, hbs = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local user = ARGV[1]

local head = redis.call('HMGET', q, 'st', 'ab', 'pm', 'n', 'late')
local st = head[1]
if not st then return {-40, '', -1} end
local now = now_ms()
local place = place_of(q, user)
if place and place.e ~= 'PERDIDO' then
  if place.e == 'ADMITIDO' and now >= place.x then
    -- an admission that expired unused: its holder is lost, and joins at the back
  else
    if place.e == 'ESPERANDO' then redis.call('ZADD', hbs, 'XX', now, user) end
    local rank = redis.call('ZRANK', line, user)
    return {1, cjson.encode(place), rank or -1}
  end
end
local starts = tonumber(head[2]) - tonumber(head[3]) * 60000
if st == 'PRE' and now < starts then return {-41, tostring(starts), -1} end

-- All checks passed: first write below.
local fresh = {e = 'ESPERANDO', j = now}
if place and place.t then redis.call('HDEL', q, 't:' .. place.t) end
if st == 'PRE' then
  fresh.p = 1
  redis.call('ZADD', pre, now, user)
else
  local late = redis.call('HINCRBY', q, 'late', 1)
  fresh.s = (tonumber(head[4]) or 0) + late
  redis.call('ZADD', line, fresh.s, user)
end
redis.call('ZADD', hbs, now, user)
redis.call('INCR', waiting)
save_place(q, user, fresh)
local rank = redis.call('ZRANK', line, user)
return {0, cjson.encode(fresh), rank or -1}
