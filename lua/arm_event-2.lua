--[[
  Arm an event's live inventory, or re-arm it after a Redis loss. Idempotent: a category
  already armed keeps its live counts (only its price and name are refreshed); a new one
  starts with available = total - sold. Event settings (state, threshold, limit, and the
  event's date, after which hold_tickets refuses it) are set.

  KEYS[1] inv   KEYS[2] feed
  ARGV[1] event id   ARGV[2] state (open | closed)   ARGV[3] low-stock threshold
  ARGV[4] max tickets per order   ARGV[5] feed max length
  ARGV[6] event date (epoch ms), or "" to keep the armed one
  ARGV[7] tickets per buyer (inventory field mpb; 0 no cap, "" keeps the armed one)
  ARGV[8] n, then n groups of 5: category id, total, sold, unit price, name

  Returns {code, payload}:
    >= 0  ""        categories newly armed
     -6   ""        malformed request
    -11   cat id    sold exceeds total for that category
]]
-- @include common
local inv, feed = KEYS[1], KEYS[2]
local event_id, state, thr, limit, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local starts, per_buyer, n = ARGV[6], ARGV[7], tonumber(ARGV[8])
if not n or #ARGV ~= 8 + 5 * n then return {-6, ''} end
if starts ~= '' and not tonumber(starts) then return {-6, ''} end
if per_buyer ~= '' and not tonumber(per_buyer) then return {-6, ''} end

local groups = {}
for i = 1, n do
  local b = 8 + 5 * (i - 1)
  local total, sold = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  if not total or not sold or total < 0 or sold < 0 then return {-6, ''} end
  if sold > total then return {-11, ARGV[b + 1]} end
  groups[i] = {ARGV[b + 1], total, sold, ARGV[b + 4], ARGV[b + 5]}
end

local cats = cjson.decode(redis.call('HGET', inv, 'cats') or '[]')
local known = {}
for _, c in ipairs(cats) do known[c] = true end
redis.call('HSET', inv, 'state', state, 'thr', thr, 'max', limit)
if starts ~= '' then redis.call('HSET', inv, 'date', starts) end
if per_buyer ~= '' then redis.call('HSET', inv, 'mpb', per_buyer) end
local armed = 0
for _, g in ipairs(groups) do
  local c = g[1]
  redis.call('HSET', inv, 'p:' .. c, g[4], 'n:' .. c, g[5])
  if not known[c] then
    redis.call('HSET', inv, 't:' .. c, g[2], 'a:' .. c, g[2] - g[3], 'h:' .. c, 0, 's:' .. c, g[3])
    cats[#cats + 1] = c
    known[c] = true
    armed = armed + 1
    stock_changed(inv, feed, maxlen, event_id, c, g[2] - g[3])
  end
end
redis.call('HSET', inv, 'cats', cjson.encode(cats))
return {armed, ''}
