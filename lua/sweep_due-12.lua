--[[
  Sweep: claim a bounded batch of due holds of one event and release each (EXPIRED),
  returning their stock (to the waitlists first) and appending the release events, all in
  this one script. The guarantee behind the keyspace notifications; idempotent like
  expire_hold. It first offers tickets an earlier call left set aside for a waitlist
  (the guarantee of the waitlist's follow-up calls).

  KEYS[1] inv   KEYS[2] orders   KEYS[3] due   KEYS[4] feed   KEYS[5] log
  KEYS[6] buyers   KEYS[7] waitlist   KEYS[8] waitlist queue
  KEYS[9..12] timer keys of the four fresh order ids a waitlist offer may use
  ARGV[1] batch size   ARGV[2] feed max length   ARGV[3] event id   ARGV[4] offer TTL (ms)
  ARGV[5..8] four fresh order ids for waitlist offers

  Returns {released, more, next, now, offers}: holds released now, 1 when the batch was
  full or the offer slots ran out (call again), the earliest deadline still in the set
  (-1 when empty; the sweeper sleeps until it; an offer made here included) and the
  server time the claim used, both epoch ms; offers as expire_hold's.
]]
-- @include common
local inv, orders, due, feed, log = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local batch, maxlen, event_id, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3],
  tonumber(ARGV[4])
local x = waitlist_ctx(event_id, inv, orders, due, feed, log, KEYS[6], KEYS[7], KEYS[8], maxlen,
  ttl, {ARGV[5], ARGV[6], ARGV[7], ARGV[8]}, {KEYS[9], KEYS[10], KEYS[11], KEYS[12]})

local now = now_ms()
offer_pending(x, now)
-- The earliest deadline first: at idle (nothing due) it is the only read.
local first = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
local ids = {}
if first[2] and tonumber(first[2]) <= now then
  ids = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, batch)
end
local released = 0
for _, id in ipairs(ids) do
  if x.pending then break end
  local json = redis.call('HGET', orders, id)
  local order = json and cjson.decode(json)
  if order and order.estado == 'RESERVED' then
    release(x, order, 'EXPIRED', now)
    released = released + 1
  else
    redis.call('ZREM', due, id)
  end
end
if #ids > 0 or #x.offers > 0 then
  first = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
end
local next_due = first[2] and tonumber(first[2]) or -1
local more = (#ids == batch or x.pending) and 1 or 0
return {released, more, next_due, now, x.offers}
