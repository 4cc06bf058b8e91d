--[[
  Admit the next buyers of an open queue, exactly against live stock (SPEC 10.1).

  With A the tickets on sale (available less what the waitlist set aside, summed over the
  categories), H those held, O the admitted buyers not yet holding and P
  entradasPorAdmision, the head of the line is admitted while A - O * P > 0, and within
  admisionesPorMinuto over the last 60 s. Nobody is admitted while A is 0; admission
  resumes when holds expire or are cancelled (A grows) or admissions expire unused (O
  shrinks). Once A + H == 0 the queue is AGOTADA, and every waiting buyer AGOTADO with it
  (one state, nothing per buyer); it reopens when stock comes back. Admissions past their
  expiry are dropped first (their buyers PERDIDO), so their share goes to the next in line.

  This script refuses nothing: it reads the queue and the stock, then applies the rule
  (before the opening it only publishes queue:update when the counts changed).
  Any number of admitters may call it concurrently: it is the arbiter.

  KEYS[1] queue   KEYS[2] waiting   KEYS[3] line   KEYS[4] heartbeats   KEYS[5] admissions
  KEYS[6] recent  KEYS[7] inv       KEYS[8] feed

  ARGV[1] event id   ARGV[2] feed max length   ARGV[3] at most this many admissions now
  ARGV[4 ..] fresh admission tokens (at least ARGV[3] of them)

  Feed: queue:admitted {eventoId, admisionToken, admisionExpiraEn} per admitted buyer (the
  buyer's channel), queue:sold-out {eventoId} on a sell-out, queue:update (event room).

  Returns {admitted now, queue estado ("" if no queue), on sale (A), held (H),
           admitted not yet holding (O), waiting, admissions expired now}
]]
-- @include common
-- @include queue
local q, waiting, line, hbs, adms, recent, inv, feed =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local event_id, maxlen, batch = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

local head = redis.call('HMGET', q, 'st', 'apm', 'am', 'per')
local st = head[1]
if not st then return {0, '', 0, 0, 0, 0, 0} end
local n_waiting = tonumber(redis.call('GET', waiting)) or 0
local now = now_ms()
if st ~= 'ABIERTA' and st ~= 'AGOTADA' then
  queue_update(q, feed, maxlen, event_id, st, n_waiting, now, false)
  return {0, st, 0, 0, 0, n_waiting, 0}
end
local apm, adm_ms, per = tonumber(head[2]) or 0, tonumber(head[3]), tonumber(head[4]) or 1
local on_sale, held = 0, 0
local cats = redis.call('HGET', inv, 'cats')
for _, c in ipairs(cats and cjson.decode(cats) or {}) do
  local row = redis.call('HMGET', inv, 'a:' .. c, 'r:' .. c, 'h:' .. c)
  on_sale = on_sale + (tonumber(row[1]) or 0) - (tonumber(row[2]) or 0)
  held = held + (tonumber(row[3]) or 0)
end
local due = redis.call('ZRANGEBYSCORE', adms, '-inf', now, 'LIMIT', 0, 200)

-- Writes from here on (nothing is refused).
for _, token in ipairs(due) do
  redis.call('ZREM', adms, token)
  local user = redis.call('HGET', q, 't:' .. token)
  local place = user and place_of(q, user)
  if place and place.e == 'ADMITIDO' and place.t == token then
    place.e = 'PERDIDO'
    save_place(q, user, place)
  end
  redis.call('HINCRBY', q, 'exp', 1)
end
local outstanding = redis.call('ZCARD', adms)

if on_sale + held <= 0 then
  if st ~= 'AGOTADA' then
    redis.call('HSET', q, 'st', 'AGOTADA', 'so', now)
    feed_add(feed, maxlen, 'queue:sold-out', {eventoId = event_id})
    queue_update(q, feed, maxlen, event_id, 'AGOTADA', n_waiting, now, true)
  end
  return {0, 'AGOTADA', on_sale, held, outstanding, n_waiting, #due}
end
local reopened = st == 'AGOTADA'
if reopened then
  st = 'ABIERTA'
  redis.call('HSET', q, 'st', st)
end

redis.call('ZREMRANGEBYSCORE', recent, '-inf', now - 60000)
local budget = batch
if apm > 0 then budget = math.min(budget, apm - redis.call('ZCARD', recent)) end
local admitted = 0
while admitted < budget and on_sale - outstanding * per > 0 do
  local next_up = redis.call('ZRANGE', line, 0, 0)
  local user = next_up[1]
  if not user then break end
  admitted = admitted + 1
  local token = ARGV[3 + admitted]
  local place = place_of(q, user) or {j = now}
  place.e, place.t, place.x = 'ADMITIDO', token, now + adm_ms
  save_place(q, user, place)
  redis.call('ZREM', line, user)
  redis.call('ZREM', hbs, user)
  redis.call('HSET', q, 't:' .. token, user)
  redis.call('ZADD', adms, place.x, token)
  redis.call('ZADD', recent, now, token)
  outstanding = outstanding + 1
  feed_add(feed, maxlen, 'queue:admitted',
    {eventoId = event_id, admisionToken = token, admisionExpiraEn = iso(place.x)}, user)
end
if admitted > 0 then
  redis.call('HINCRBY', q, 'adm', admitted)
  n_waiting = redis.call('DECRBY', waiting, admitted)
end
queue_update(q, feed, maxlen, event_id, st, n_waiting, now, reopened)
return {admitted, st, on_sale, held, outstanding, n_waiting, #due}
