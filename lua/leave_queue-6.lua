--[[
  Leave an event's admission queue: the place is given up (an admission not yet used
  returns its share at once); joining again puts the buyer at the back.

  KEYS[1] queue   KEYS[2] waiting   KEYS[3] pre   KEYS[4] line   KEYS[5] heartbeats
  KEYS[6] admissions

  ARGV[1] user id

  The join list (pre) is frozen once the opening has started: a buyer who leaves then
  stays in it, and the opening skips them.

  Returns {code, payload}:
     0  estado  left (the place's state before)
    -40 ""      no queue for this event
    -42 ""      not in the queue
]]
-- @include common
-- @include queue
local q, waiting, pre, line, hbs, adms = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local user = ARGV[1]

local st = redis.call('HGET', q, 'st')
if not st then return {-40, ''} end
local place = place_of(q, user)
if not place then return {-42, ''} end

-- All checks passed: first write below.
if place.e == 'ESPERANDO' then
  redis.call('DECR', waiting)
  redis.call('ZREM', line, user)
  redis.call('ZREM', hbs, user)
  if st == 'PRE' then redis.call('ZREM', pre, user) end
end
if place.t then
  redis.call('ZREM', adms, place.t)
  redis.call('HDEL', q, 't:' .. place.t)
end
redis.call('HDEL', q, 'u:' .. user)
return {0, place.e}
