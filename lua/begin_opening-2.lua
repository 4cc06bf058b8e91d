--[[
  Start (or take over) the opening of a queue at abreEn: the join list is frozen, its size
  recorded (buyers joining from now on queue behind it), and the caller gets a lease to
  order it. A lease whose holder went silent past its end is taken over: ordering again
  gives the same result (the order depends only on the seed and the frozen join list).

  KEYS[1] queue   KEYS[2] pre

  ARGV[1] owner (the caller's id)   ARGV[2] lease (ms)

  Returns {code, payload, pre-queue size}:
     1  seed   the caller owns the opening: order the join list and place it
     0  state  nothing to do (not due yet, already open, or another opener is at it)
    -40 ""     no queue for this event
]]
-- @include common
local q, pre = KEYS[1], KEYS[2]
local owner, lease = ARGV[1], tonumber(ARGV[2])

local head = redis.call('HMGET', q, 'st', 'ab', 'lu', 'sd', 'n')
local st = head[1]
if not st then return {-40, '', 0} end
local now = now_ms()
if st == 'PRE' then
  if now < tonumber(head[2]) then return {0, st, 0} end
elseif st ~= 'OPENING' or now < (tonumber(head[3]) or 0) then
  return {0, st, 0}
end

-- All checks passed: first write below.
local n = tonumber(head[5]) or 0
if st == 'PRE' then
  n = redis.call('ZCARD', pre)
  redis.call('HSET', q, 'st', 'OPENING', 'n', n, 'os', now)
end
redis.call('HSET', q, 'lo', owner, 'lu', now + lease)
return {1, head[4], n}
