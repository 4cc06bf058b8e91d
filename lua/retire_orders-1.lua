--[[
  Mark finished orders (CONFIRMED, EXPIRED, CANCELLED) as stored: the writer calls this
  once the store acknowledged them. prune_orders removes them from the orders hash when
  the retention window has passed since, if they are still at that version.

  KEYS[1] retired   the event's retention sorted set
  ARGV[1..] "<order id>:<version>" members; the first retirement of a member keeps its time

  Returns the number of members added now.
]]
-- @include common
local retired = KEYS[1]
local now = now_ms()
local added = 0
for i = 1, #ARGV do
  added = added + redis.call('ZADD', retired, 'NX', now, ARGV[i])
end
return added
