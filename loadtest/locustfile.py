"""locust scenarios of an on-sale, tagged so any mix can run.

    rush       buyers: open an event, hold 1-4 tickets in 1-2 categories (Idempotency-Key),
               confirm most, abandon some (they expire), cancel a few, retry sold-outs
    watchers   WebSocket feeds of the rush events, every frame checked
    browse     event list, search, detail and categories, anonymous
    organizer  create events, resize and add categories, edit / briefly close them

Headless against a server it starts, with seeding, expiry wait and audit: ``make loadtest``.
Web UI against ``RATE_LIMIT_PER_MINUTE=0 make run``:

    .venv/bin/locust -f loadtest/locustfile.py --host http://127.0.0.1:3000

Accounts and rush events come from the seed file (``LOADTEST_SEED``, default
``var/loadtest/seed.json``) when it was made for this host; otherwise the first start seeds
``LOADTEST_ACCOUNTS`` (default 40) buyers through the API and writes the file. Any
``--tags`` mix works: user classes left without tasks are dropped before spawning.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gevent
import httpx
from locust import events

from loadtest.scenarios.browse import Browser
from loadtest.scenarios.organizer import Organizer
from loadtest.scenarios.queue import QueueBuyer
from loadtest.scenarios.rush import RushBuyer
from loadtest.scenarios.watchers import Watcher
from loadtest.shapes import shape_named
from loadtest.users import LEDGER, POOL, SeedError

__all__ = ["Browser", "Organizer", "QueueBuyer", "RushBuyer", "Watcher"]

# LOCUST_SHAPE=flash: the flash crowd (loadtest/shapes.py); locust runs the one shape
# class found in this module, so only the chosen one is bound here.
if _shape := shape_named(os.environ.get("LOCUST_SHAPE", "")):
    globals()[_shape.__name__] = _shape
    __all__.append(_shape.__name__)

log = logging.getLogger("onsale.loadtest")

HOSTS_ALLOWED = ("http://127.0.0.1", "http://localhost", "http://[::1]")


def _host_refused(host: str) -> str | None:
    if host.startswith(HOSTS_ALLOWED) or os.environ.get("LOADTEST_ANY_HOST"):
        return None
    return f"refusing to load {host or '(no --host)'}: only 127.0.0.1 / localhost"


@events.init.add_listener
def on_init(environment: Any, **_: Any) -> None:
    if environment.host and (problem := _host_refused(environment.host)):
        raise SystemExit(problem)


@events.test_start.add_listener
def on_test_start(environment: Any, **_: Any) -> None:
    host = (environment.host or "").rstrip("/")
    # Tags were applied just before this event: drop user classes with nothing left to do.
    kept = [u for u in environment.user_classes if u.tasks]
    problem = _host_refused(host) or (
        None if kept else "no user class has a task with the requested --tags"
    )
    if problem is None:
        environment.user_classes[:] = kept
        try:
            seed = POOL.ensure(host, buyers=int(os.environ.get("LOADTEST_ACCOUNTS", "40")))
        except (SeedError, httpx.HTTPError) as e:
            problem = f"seeding {host} failed: {e}"
    if problem is not None:
        log.error("%s; stopping", problem)
        POOL.seed = None
        gevent.spawn(environment.runner.stop)
        return
    log.info(
        "seed: %d buyers, %d organizers, rush events %s",
        len(seed.buyers),
        len(seed.organizers),
        ", ".join(e.id for e in seed.rush_events),
    )


@events.test_stop.add_listener
def on_test_stop(environment: Any, **_: Any) -> None:
    path = LEDGER.write()
    log.info("buyer outcomes written to %s: %s", path, dict(LEDGER.outcomes))
