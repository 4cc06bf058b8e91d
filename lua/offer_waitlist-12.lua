--[[
  Offer the tickets set aside for the waitlists of one event (every category with some),
  when a releasing script ran out of offer slots (it returned pending = 1). Idempotent:
  with nothing set aside it does nothing.

  KEYS[1] inv   KEYS[2] orders   KEYS[3] due   KEYS[4] feed   KEYS[5] log   KEYS[6] buyers
  KEYS[7] waitlist   KEYS[8] waitlist queue
  KEYS[9..12] timer keys of the four fresh order ids a waitlist offer may use
  ARGV[1] event id   ARGV[2] feed max length   ARGV[3] offer TTL (ms)
  ARGV[4..7] four fresh order ids for waitlist offers

  Returns {offers, pending} (as expire_hold's).
]]
-- @include common
local x = waitlist_ctx(ARGV[1], KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7],
  KEYS[8], tonumber(ARGV[2]), tonumber(ARGV[3]), {ARGV[4], ARGV[5], ARGV[6], ARGV[7]},
  {KEYS[9], KEYS[10], KEYS[11], KEYS[12]})
offer_pending(x, now_ms())
return {x.offers, x.pending and 1 or 0}
