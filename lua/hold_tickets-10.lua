--[[
  Hold tickets: reserve every requested category of one order atomically, or nothing.

  KEYS[1] inv      event inventory hash
  KEYS[2] orders   event orders hash
  KEYS[3] idem     event idempotency hash
  KEYS[4] due      event deadline sorted set
  KEYS[5] timer    the new order's TTL timer key
  KEYS[6] feed     event WebSocket feed stream
  KEYS[7] log      event order log stream (writer)
  KEYS[8] buyers   event buyers hash: user id -> tickets held plus sold
  KEYS[9] queue    event admission-queue hash (lua/lib/queue.lua): absent = no queue
  KEYS[10] adm     the queue's admissions not yet used (token -> expiry)

  ARGV[1] event id          ARGV[2] order id (the request id: a retry reuses it)
  ARGV[3] user id           ARGV[4] idempotency field "<user>:<key>", or ""
  ARGV[5] hold ttl (ms)     ARGV[6] feed max length
  ARGV[7] n categories, then n pairs: category id, quantity (distinct ids, quantity >= 1)
  ARGV[8 + 2n] the Admission-Token, or ""

  The event's date (inventory field "date", epoch ms) is checked against the server clock:
  an event that has taken place is not on sale. An idempotency field already used for
  other tickets of this event is refused (-15); the caller checks the user's record across
  events (engine/core.py). The order JSON keeps the field ("ik") so that pruning the order
  (prune_orders) removes it too. The buyer cap (inventory field "mpb") counts the user's
  tickets held plus sold across all their orders of the event; a category's stock on sale
  is its available less what is set aside for its waitlist (r:<c>). While the event has an
  admission queue, the hold needs the buyer's unused, unexpired admission token, which it
  consumes (place USADO) in the same step; any refusal, stock included, leaves it unused.

  Returns {code, payload}:
     0  order JSON          held now
     1  order JSON          the same request or idempotency key was already held: nothing done
    -1  ""                  event not found
    -2  state               event not on sale
    -3  max per order       per-order limit exceeded
    -4  category id         category not found
    -5  "cat:available"     not enough stock in that category
    -6  ""                  malformed request
    -14 ""                  order id already used by another user
    -15 ""                  idempotency key already used for other tickets
    -16 event date (ms)     the event has taken place
    -17 tickets left        the buyer cap would be passed (payload: what the buyer may add)
    -45 ""                  the event has a queue: an admission token is required
    -46 ""                  the token is not this buyer's admission for this event
    -47 ""                  the admission has expired
    -48 ""                  the admission was already used
]]
-- @include common
local inv, orders, idem, due, timer, feed, log, buyers =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local event_id, order_id, user_id, idem_field = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ttl, maxlen, n = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local queue, admissions = KEYS[9], KEYS[10]

-- Whether an earlier order asked for exactly the n (category, quantity) pairs of ARGV.
local function same_tickets(order)
  if not n or #order.tickets ~= n then return false end
  local asked = {}
  for i = 1, n do asked[ARGV[6 + 2 * i]] = tonumber(ARGV[7 + 2 * i]) end
  for _, t in ipairs(order.tickets) do
    if asked[t.categoriaId] ~= t.cantidad then return false end
  end
  return true
end

if idem_field ~= '' then
  local previous = redis.call('HGET', idem, idem_field)
  if previous then
    local json = redis.call('HGET', orders, previous)
    if json then
      if not same_tickets(cjson.decode(json)) then return {-15, ''} end
      return {1, json}
    end
  end
end
local existing = redis.call('HGET', orders, order_id)
if existing then
  if cjson.decode(existing).usuarioId ~= user_id then return {-14, ''} end
  return {1, existing}
end

local head = redis.call('HMGET', inv, 'state', 'max', 'thr', 'date', 'mpb')
local state = head[1]
if not state then return {-1, ''} end
if state ~= 'open' then return {-2, state} end
local now = now_ms()
local starts = tonumber(head[4])
if starts and now >= starts then return {-16, head[4]} end
if not n or n < 1 or #ARGV ~= 8 + 2 * n or not ttl or ttl < 1 then return {-6, ''} end
local token = ARGV[8 + 2 * n]
local admission = nil
if redis.call('EXISTS', queue) == 1 then
  if token == '' then return {-45, ''} end
  if redis.call('HGET', queue, 't:' .. token) ~= user_id then return {-46, ''} end
  local raw = redis.call('HGET', queue, 'u:' .. user_id)
  admission = raw and cjson.decode(raw)
  if not admission or admission.t ~= token then return {-46, ''} end
  if admission.e == 'USADO' then return {-48, ''} end
  if admission.e ~= 'ADMITIDO' or now >= admission.x then return {-47, ''} end
end

local limit, thr = tonumber(head[2]) or 0, tonumber(head[3]) or 0
local wanted, count = {}, 0
for i = 1, n do
  local q = tonumber(ARGV[7 + 2 * i])
  if not q or q < 1 or q ~= math.floor(q) then return {-6, ''} end
  wanted[i] = {ARGV[6 + 2 * i], q}
  count = count + q
end
if limit > 0 and count > limit then return {-3, tostring(limit)} end
local cap = tonumber(head[5]) or 0
if cap > 0 then
  local mine = tonumber(redis.call('HGET', buyers, user_id)) or 0
  if mine + count > cap then return {-17, tostring(math.max(0, cap - mine))} end
end

-- One read per category: total, available, price, name, the low-stock flag, set aside.
local tickets, rows, total = {}, {}, 0
for i, w in ipairs(wanted) do
  local c, q = w[1], w[2]
  local row = redis.call('HMGET', inv, 't:' .. c, 'a:' .. c, 'p:' .. c, 'n:' .. c, 'low:' .. c,
    'r:' .. c)
  if not row[1] then return {-4, c} end
  local avail = tonumber(row[2]) - (tonumber(row[6]) or 0)
  if avail < q then return {-5, c .. ':' .. avail} end
  local price = tonumber(row[3]) or 0
  tickets[i] = {categoriaId = c, nombre = row[4] or c, cantidad = q, precioUnitario = price}
  rows[i] = row
  total = total + price * q
end

-- All checks passed: first write below.
if admission then
  admission.e = 'USADO'
  admission.o = order_id
  redis.call('HSET', queue, 'u:' .. user_id, cjson.encode(admission))
  redis.call('ZREM', admissions, token)
  redis.call('HINCRBY', queue, 'conv', 1)
end
local deadline = now + ttl
for i, t in ipairs(tickets) do
  local c = t.categoriaId
  redis.call('HINCRBY', inv, 'h:' .. c, t.cantidad)
  local avail = redis.call('HINCRBY', inv, 'a:' .. c, -t.cantidad) - (tonumber(rows[i][6]) or 0)
  stock_changed_known(inv, feed, maxlen, event_id, c, avail,
    tonumber(rows[i][1]) or 0, thr, rows[i][5] ~= false)
end
local order = {
  id = order_id, eventoId = event_id, usuarioId = user_id, tickets = tickets,
  total = math.floor(total * 100 + 0.5) / 100, estado = 'RESERVED',
  expiraEn = deadline, creadoEn = now, v = 0,
}
buyer_add(buyers, user_id, count)
redis.call('ZADD', due, deadline, order_id)
redis.call('SET', timer, '1', 'PX', ttl)
if idem_field ~= '' then
  order.ik = idem_field
  redis.call('HSET', idem, idem_field, order_id)
end
return {0, order_changed(orders, feed, log, maxlen, order, now)}
