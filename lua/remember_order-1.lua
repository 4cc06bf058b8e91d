--[[
  Remember a user's new order for a while, so their order list shows it before the writer
  has persisted it (read-your-writes). Not an inventory change: the user's key lives in its
  own slot, which is why this is not part of hold_tickets.

  KEYS[1] the user's recent-orders sorted set
  ARGV[1] order id   ARGV[2] created at (ms)   ARGV[3] how many to keep   ARGV[4] ttl (s)

  Returns the number of orders remembered.
]]
local key = KEYS[1]
redis.call('ZADD', key, ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYRANK', key, 0, -tonumber(ARGV[3]) - 1)
redis.call('EXPIRE', key, ARGV[4])
return redis.call('ZCARD', key)
