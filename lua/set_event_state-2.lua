--[[
  Open, close or delete an armed event for sale, or move its date, and publish the change
  on its feed.

  KEYS[1] inv   KEYS[2] feed
  ARGV[1] event id   ARGV[2] state (open | closed | deleted)   ARGV[3] changes JSON
  ARGV[4] feed max length   ARGV[5] low-stock threshold ("" keeps)   ARGV[6] max per order ("" keeps)
  ARGV[7] event date, epoch ms ("" or absent keeps)
  ARGV[8] tickets per buyer (0 no cap; "" or absent keeps). Lowering it below what a buyer
          already holds keeps their orders; only their new holds are refused.

  Returns {code, payload}:
     0  previous state
    -1  ""   event not armed
    -6  ""   malformed request
]]
-- @include common
local inv, feed = KEYS[1], KEYS[2]
local event_id, state, changes, maxlen = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local starts = ARGV[7] or ''
if starts ~= '' and not tonumber(starts) then return {-6, ''} end
local per_buyer = ARGV[8] or ''
if per_buyer ~= '' and not tonumber(per_buyer) then return {-6, ''} end
local previous = redis.call('HGET', inv, 'state')
if not previous then return {-1, ''} end
redis.call('HSET', inv, 'state', state)
if ARGV[5] ~= '' then redis.call('HSET', inv, 'thr', ARGV[5]) end
if ARGV[6] ~= '' then redis.call('HSET', inv, 'max', ARGV[6]) end
if starts ~= '' then redis.call('HSET', inv, 'date', starts) end
if per_buyer ~= '' then redis.call('HSET', inv, 'mpb', per_buyer) end
feed_add(feed, maxlen, 'event:update', {eventoId = event_id, cambios = cjson.decode(changes)})
return {0, previous}
