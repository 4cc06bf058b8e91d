--[[
  Prune: remove a bounded batch of retired orders from an event's orders hash once the
  retention window has passed since the writer stored them (reads then come from the
  store). An order is removed only while it is still finished and at the stored version;
  its idempotency field goes with it if it still names the order.

  KEYS[1] orders   KEYS[2] idem   KEYS[3] retired
  ARGV[1] retention (ms)   ARGV[2] batch size

  Returns {pruned, more}: orders removed now, and 1 when the batch was full (call again).
]]
-- @include common
local orders, idem, retired = KEYS[1], KEYS[2], KEYS[3]
local retention, batch = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_ms()

local members = redis.call('ZRANGEBYSCORE', retired, '-inf', now - retention, 'LIMIT', 0, batch)
local pruned = 0
for _, member in ipairs(members) do
  local id, version = string.match(member, '^(.+):(%d+)$')
  local json = id and redis.call('HGET', orders, id)
  if json then
    local order = cjson.decode(json)
    if order.estado ~= 'RESERVED' and order.v == tonumber(version) then
      redis.call('HDEL', orders, id)
      if order.ik and redis.call('HGET', idem, order.ik) == id then
        redis.call('HDEL', idem, order.ik)
      end
      pruned = pruned + 1
    end
  end
  redis.call('ZREM', retired, member)
end
return {pruned, #members == batch and 1 or 0}
