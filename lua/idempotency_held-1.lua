--[[
  Whether an event's hold script has an order under a user's Idempotency-Key (its
  idempotency hash field "<userId>:<key>"): read before a keyed hold is refused as sold out
  without the hold script (api/services/stock_gate.py), so that a replay is never refused.
  A script so that it shares the engine's pipelined round trips with recall_idempotency.

  KEYS[1] the event's idempotency hash (os:evt:{<eventId>}:idem)
  ARGV[1] the field, "<userId>:<key>"

  Returns 1 when the field exists, else 0.
]]
return redis.call('HEXISTS', KEYS[1], ARGV[1])
