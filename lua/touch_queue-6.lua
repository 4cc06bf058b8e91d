--[[
  Heartbeat and read of buyers' places: each ESPERANDO buyer's heartbeat moves to now; each
  place is returned with its rank in the line, and the figures every place shows.

  KEYS[1] queue   KEYS[2] heartbeats   KEYS[3] line   KEYS[4] recent   KEYS[5] inv
  KEYS[6] waiting

  ARGV[1] n, then n user ids

  Returns {estado of the queue or "", tickets on sale, admissions in the last minute,
           waiting, server time (ms), then per user: place JSON or "", rank in line (-1: not in it)}
]]
-- @include common
-- @include queue
local q, hbs, line, recent, inv, waiting = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local n = tonumber(ARGV[1]) or 0

local st = redis.call('HGET', q, 'st')
if not st then return {'', 0, 0, 0, 0} end
local now = now_ms()
local on_sale = 0
local cats = redis.call('HGET', inv, 'cats')
if cats then
  for _, c in ipairs(cjson.decode(cats)) do
    local row = redis.call('HMGET', inv, 'a:' .. c, 'r:' .. c)
    on_sale = on_sale + (tonumber(row[1]) or 0) - (tonumber(row[2]) or 0)
  end
end
local out = {st, on_sale, redis.call('ZCOUNT', recent, now - 60000, '+inf'),
  tonumber(redis.call('GET', waiting)) or 0, now}
for i = 1, n do
  local user = ARGV[1 + i]
  local raw = redis.call('HGET', q, 'u:' .. user)
  local rank = -1
  if raw then
    redis.call('ZADD', hbs, 'XX', now, user)
    rank = redis.call('ZRANK', line, user) or -1
  end
  out[#out + 1] = raw or ''
  out[#out + 1] = rank
end
return out
