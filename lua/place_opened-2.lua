--[[
  Place one batch of the ordered join list in the line (the opening works in bounded
  batches, so a 100k pre-queue never blocks Redis for long). Each buyer still ESPERANDO
  who joined in the pre-queue and has no place in line yet gets seq = their rank in the
  order HMAC-SHA256(seed, usuarioId); the others (left, lost) are skipped. Renews the
  opener's lease.

  KEYS[1] queue   KEYS[2] line

  ARGV[1] owner   ARGV[2] lease (ms)   ARGV[3 ..] pairs: user id, rank (1-based)

  Returns {code, placed}:
     0  placed   this batch is in line
    -44 ""       the caller no longer owns the opening
]]
-- @include common
-- @include queue
local q, line = KEYS[1], KEYS[2]
local owner, lease = ARGV[1], tonumber(ARGV[2])

local head = redis.call('HMGET', q, 'st', 'lo')
if head[1] ~= 'OPENING' or head[2] ~= owner then return {-44, ''} end

-- All checks passed: first write below.
redis.call('HSET', q, 'lu', now_ms() + lease)
local placed = 0
for i = 3, #ARGV - 1, 2 do
  local user, rank = ARGV[i], tonumber(ARGV[i + 1])
  local place = place_of(q, user)
  if place and place.e == 'ESPERANDO' and place.p == 1 and not place.s then
    place.s = rank
    save_place(q, user, place)
    redis.call('ZADD', line, rank, user)
    placed = placed + 1
  end
end
return {0, placed}
