"""Nobody admitted past the stock: a sampler for load runs with an admission queue.

While a run goes on, :class:`QueueSampler` reads every queue's figures in one atomic
Lua call per queue and sample (so a hold that turns an admission into held tickets between
two reads cannot be counted twice): A the tickets on sale, H held, S sold, O the admitted
buyers not yet holding, P ``entradasPorAdmision``. The admit script admits only while
``A - O*P > 0``, and an admitted buyer holds at most P tickets, so at every instant

    claims = S + H + O*P <= total + P - 1        (P = 1: S + H + O <= total)

i.e. sold, held and the tickets the admitted-but-not-holding buyers may still take never
exceed the stock (the last admission may round up by P - 1 tickets). A sample above that
bound is a buyer admitted past the stock.

    sampler = QueueSampler(redis_url).start(); ...; report = sampler.stop()
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from engine import keys

READ = """
local q, adms, inv = KEYS[1], KEYS[2], KEYS[3]
local head = redis.call('HMGET', q, 'st', 'per', 'adm', 'conv', 'exp', 'lost')
if not head[1] then return false end
local on_sale, held, sold, total = 0, 0, 0, 0
local cats = redis.call('HGET', inv, 'cats')
for _, c in ipairs(cats and cjson.decode(cats) or {}) do
  local row = redis.call('HMGET', inv, 'a:' .. c, 'r:' .. c, 'h:' .. c, 't:' .. c)
  local a, h, t = tonumber(row[1]) or 0, tonumber(row[3]) or 0, tonumber(row[4]) or 0
  on_sale = on_sale + a - (tonumber(row[2]) or 0)
  held = held + h
  sold = sold + t - a - h
  total = total + t
end
return {head[1], tonumber(head[2]) or 1, redis.call('ZCARD', adms), on_sale, held, sold,
        total, tonumber(head[3]) or 0, tonumber(head[4]) or 0, tonumber(head[5]) or 0,
        tonumber(head[6]) or 0}
"""


@dataclass
class QueueFigures:
    """One queue's worst sample and its last figures."""

    event_id: str
    samples: int = 0
    per: int = 1
    total: int = 0
    max_claims: int = 0
    max_outstanding: int = 0
    violations: int = 0
    worst: dict[str, Any] = field(default_factory=dict)
    last: dict[str, Any] = field(default_factory=dict)

    @property
    def bound(self) -> int:
        return self.total + self.per - 1

    def line(self) -> str:
        last = self.last
        return (
            f"queue {self.event_id}: {self.samples} samples, P={self.per}; "
            f"max sold+held+admitted-not-holding*P = {self.max_claims} "
            f"(bound total+P-1 = {self.bound}), max admitted-not-holding "
            f"{self.max_outstanding}; at the end: estado {last.get('state')}, admitted "
            f"{last.get('admitted')}, converted {last.get('converted')}, admissions expired "
            f"{last.get('expired')}, lost {last.get('lost')}, sold {last.get('sold')} of "
            f"{self.total}; violations {self.violations}"
        )


class QueueSampler:
    """Samples every queue (``os:queues``) every ``every_s`` in a thread."""

    def __init__(self, redis_url: str, every_s: float = 0.1) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.every_s = every_s
        self.figures: dict[str, QueueFigures] = {}
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="queue-sampler", daemon=True)
        self._read = self.client.register_script(READ)

    def start(self) -> QueueSampler:
        self._thread.start()
        return self

    def sample(self) -> None:
        for raw_id in self.client.smembers(keys.QUEUES):
            event_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            k = keys.queue_keys(event_id)
            got = self._read(keys=[k.queue, k.admissions, keys.inventory(event_id)])
            if not got:
                continue
            st, per, outstanding, on_sale, held, sold, total, adm, conv, exp, lost = got
            f = self.figures.setdefault(event_id, QueueFigures(event_id))
            f.samples += 1
            f.per, f.total = int(per), int(total)
            claims = int(sold) + int(held) + int(outstanding) * int(per)
            now = {
                "state": st.decode() if isinstance(st, bytes) else st,
                "on_sale": int(on_sale),
                "held": int(held),
                "sold": int(sold),
                "outstanding": int(outstanding),
                "claims": claims,
                "admitted": int(adm),
                "converted": int(conv),
                "expired": int(exp),
                "lost": int(lost),
            }
            f.last = now
            f.max_outstanding = max(f.max_outstanding, int(outstanding))
            if claims > f.max_claims:
                f.max_claims, f.worst = claims, now
            if claims > f.bound:
                f.violations += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except redis.RedisError:
                self.errors += 1
            self._stop.wait(self.every_s)

    def stop(self) -> list[QueueFigures]:
        self._stop.set()
        self._thread.join(10)
        try:
            self.sample()  # the figures at the end
        except redis.RedisError:
            self.errors += 1
        self.client.close()
        return list(self.figures.values())


def problems_of(figures: list[QueueFigures]) -> list[str]:
    out = []
    for f in figures:
        if f.violations:
            out.append(
                f"queue {f.event_id}: admitted past the stock in {f.violations} samples "
                f"(worst {f.worst}, bound {f.bound})"
            )
        if f.last.get("sold", 0) > f.total:
            out.append(f"queue {f.event_id}: sold {f.last['sold']} of {f.total}")
    return out


def wait_for(predicate: Any, timeout: float, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False
