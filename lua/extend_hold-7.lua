--[[
  Extend a held order's deadline once more, server-capped: at most ARGV[4] extensions,
  each of ARGV[3] ms, never past creadoEn + ARGV[5] (an extension that would pass it is
  cut to it; none is granted once the order is there). Refused while buyers wait for any
  of its categories (the waitlist's w:<c>, or the admission queue's waiting counter).
  The deadline (due set), the timer key and the feed (order:status-change with the new
  expiraEn) move together here.

  KEYS[1] inv   KEYS[2] orders   KEYS[3] due   KEYS[4] timer   KEYS[5] feed   KEYS[6] log
  KEYS[7] queue waiting   the admission queue's count of buyers waiting (a string integer;
                          absent = 0). The queue fills it; this script only reads it.

  ARGV[1] order id   ARGV[2] user id   ARGV[3] extension (ms)   ARGV[4] extensions allowed
  ARGV[5] longest hold since creation (ms)   ARGV[6] feed max length

  The order JSON counts its extensions in "ext".

  Returns {code, payload}:
     0  order JSON   extended now
    -7  ""           no such order (or not the caller's)
   -21  reason       refused: not_reserved | limit | cap | contested
]]
-- @include common
local inv, orders, due, timer, feed, log = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local queue_waiting = KEYS[7]
local order_id, user_id = ARGV[1], ARGV[2]
local step, allowed, longest, maxlen =
  tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])

local json = redis.call('HGET', orders, order_id)
if not json then return {-7, ''} end
local order = cjson.decode(json)
if order.usuarioId ~= user_id then return {-7, ''} end
local now = now_ms()
if order.estado ~= 'RESERVED' or now >= order.expiraEn then return {-21, 'not_reserved'} end
if (order.ext or 0) >= allowed then return {-21, 'limit'} end
local deadline = math.min(order.expiraEn + step, order.creadoEn + longest)
if deadline <= order.expiraEn then return {-21, 'cap'} end
if (tonumber(redis.call('GET', queue_waiting)) or 0) > 0 then return {-21, 'contested'} end
for _, t in ipairs(order.tickets) do
  if (tonumber(redis.call('HGET', inv, 'w:' .. t.categoriaId)) or 0) > 0 then
    return {-21, 'contested'}
  end
end

-- All checks passed: first write below.
order.expiraEn = deadline
order.ext = (order.ext or 0) + 1
redis.call('ZADD', due, deadline, order_id)
redis.call('SET', timer, '1', 'PX', deadline - now)
return {0, order_changed(orders, feed, log, maxlen, order, now)}
