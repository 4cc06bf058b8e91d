--[[
  Read a user's Idempotency-Key record, before the hold (a script so that it shares the
  engine's pipelined round trips). The record lives in the user's slot, not the event's:
  it scopes the key across events, which no hold script can see.

  KEYS[1] the user's record for this key (os:user:{<userId>}:idem:<key>)

  Returns "<fingerprint> <order id>", or false when the key is unused (or expired).
]]
return redis.call('GET', KEYS[1])
