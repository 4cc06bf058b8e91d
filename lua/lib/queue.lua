--[[
  Admission queue helpers (SPEC 10.1), included with "-- @include queue" after "common".

  Queue hash (engine/keys.py queue), one per event:
    st   PRE | OPENING | ABIERTA | AGOTADA       ab   abreEn (epoch ms)
    pm   preColaMinutos    apm  admisionesPorMinuto (0: no limit)    am  minutosAdmision (ms)
    per  entradasPorAdmision    hb  latidoSegundos    c  compromisoSemilla    sd  the seed
    rv   1 once the seed is revealed    n  pre-queue size frozen when opening started
    late latecomers so far (their seq is n + late)    lo/lu  the opener's lease owner/until
    adm  admissions issued    conv  admissions used by a hold    lost  buyers lost
    exp  admissions expired unused    so  when it last sold out (ms)    oa  opened at (ms)
    od   how long the opening took (ms)    ut/uc  the last queue:update (ms / its counts)
    u:<user>   the buyer's place JSON: e estado, s seq (place in line), p 1 if joined in
               the pre-queue, j joined (ms), t admission token, x its expiry (ms)
    t:<token>  the user the admission token was issued to
  Waiting counter (queue waiting): buyers ESPERANDO (pre-queue and line); the hold
  extension script reads it. Pre (zset user -> joined ms): the join list, frozen once
  opening starts. Line (zset user -> seq): buyers waiting in the open queue. Heartbeats
  (zset user -> last heartbeat ms): every ESPERANDO buyer. Admissions (zset token -> expiry
  ms): admitted buyers not yet holding. Recent (zset token -> admitted ms): the last minute
  of admissions (admisionesPorMinuto, and the measured rate behind the ETA).
]]
local function place_of(q, user)
  local raw = redis.call('HGET', q, 'u:' .. user)
  if not raw then return nil end
  return cjson.decode(raw)
end

local function save_place(q, user, place)
  redis.call('HSET', q, 'u:' .. user, cjson.encode(place))
end

-- queue:update on the event room at most once a second, or at once on a state change.
local function queue_update(q, feed, maxlen, event_id, st, waiting, now, force)
  local adm = tonumber(redis.call('HGET', q, 'adm')) or 0
  local counts = st .. ':' .. waiting .. ':' .. adm
  local last = redis.call('HMGET', q, 'ut', 'uc')
  if last[2] == counts then return end
  if not force and now - (tonumber(last[1]) or 0) < 1000 then return end
  redis.call('HSET', q, 'ut', now, 'uc', counts)
  feed_add(feed, maxlen, 'queue:update',
    {eventoId = event_id, estado = st == 'OPENING' and 'PRE' or st, enCola = waiting,
     admitidos = adm})
end
