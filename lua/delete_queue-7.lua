--[[
  Delete an event's admission queue: the event is open to all again. Every key is
  UNLINKed (freed in the background: a 100k line does not block Redis).

  KEYS[1] queue   KEYS[2] waiting   KEYS[3] pre   KEYS[4] line   KEYS[5] heartbeats
  KEYS[6] admissions   KEYS[7] recent

  Returns 1 if there was a queue, else 0.
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
return 1
