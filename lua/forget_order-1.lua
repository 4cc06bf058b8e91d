--[[
  Forget an order id remembered for a hold that made no order (refused, or a replay that
  answered an earlier order): the hold's remember_order rides in the hold's round trip,
  before its answer is known. Not an inventory change: the user's key lives in its own
  slot.

  KEYS[1] the user's recent-orders sorted set
  ARGV[1] order id

  Returns 1 when it was there, else 0.
]]
return redis.call('ZREM', KEYS[1], ARGV[1])
