--[[
  Record a user's Idempotency-Key after a successful hold, unless it is already recorded
  (the first hold wins). The record expires: the IETF Idempotency-Key draft lets a key be
  forgotten after a while (24 h by default here).

  KEYS[1] the user's record for this key (os:user:{<userId>}:idem:<key>)
  ARGV[1] "<fingerprint> <order id>"   ARGV[2] ttl (s)

  Returns {code, payload}:
     0  ""       recorded now
     1  record   already recorded (payload: the record, ours or another request's)
]]
local key, record, ttl = KEYS[1], ARGV[1], ARGV[2]
if redis.call('SET', key, record, 'NX', 'EX', ttl) then return {0, ''} end
return {1, redis.call('GET', key) or ''}
