--[[
  Configure an event's admission queue (create it, or change it).

  KEYS[1] queue   the event's queue hash
  KEYS[2] inv     the event inventory hash (the event must be armed)
  KEYS[3] waiting the queue's waiting counter

  ARGV[1] abreEn (epoch ms)   ARGV[2] preColaMinutos   ARGV[3] admisionesPorMinuto (0: none)
  ARGV[4] minutosAdmision (ms)   ARGV[5] entradasPorAdmision   ARGV[6] latidoSegundos
  ARGV[7] compromisoSemilla   ARGV[8] the seed (hex; kept secret until the opening)

  A new queue starts in PRE with this seed and commitment; an existing one keeps its seed.
  Once opening has started, abreEn can no longer change (-43); the other numbers can.

  Returns {code, payload}:
     0  ""       created
     1  ""       updated
    -1  ""       event not found
    -43 state    the queue has opened: abreEn cannot change
]]
-- @include common
local q, inv, waiting = KEYS[1], KEYS[2], KEYS[3]
local opens, pre_min, apm, adm_ms, per, hb =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]

if redis.call('HEXISTS', inv, 'state') == 0 then return {-1, ''} end
local st = redis.call('HGET', q, 'st')
if st and st ~= 'PRE' and tonumber(redis.call('HGET', q, 'ab')) ~= tonumber(opens) then
  return {-43, st}
end

-- All checks passed: first write below.
redis.call('HSET', q, 'ab', opens, 'pm', pre_min, 'apm', apm, 'am', adm_ms, 'per', per,
  'hb', hb)
if st then return {1, ''} end
redis.call('HSET', q, 'st', 'PRE', 'c', ARGV[7], 'sd', ARGV[8], 'adm', 0, 'conv', 0,
  'lost', 0, 'exp', 0, 'late', 0, 'n', 0)
redis.call('SET', waiting, 0)
return {0, ''}
