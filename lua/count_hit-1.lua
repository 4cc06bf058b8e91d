--[[
  Count one request in a fixed rate-limit window (not an inventory change: the counter
  lives in its own slot). The window's key expires on its own after ARGV[1] seconds.

  KEYS[1] the window's counter
  ARGV[1] ttl of the counter (s), set when the window opens

  Returns the count including this request.
]]
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
