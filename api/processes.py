"""Whether a process still exists, by pid: one check for everything that cleans up after
processes that are gone (prometheus_client's multiprocess files at start-up,
api/commands/serve.py; the live gauges of dead workers at a scrape, api/metrics_scrape.py).
Imports nothing heavy: serve asks it before prometheus_client may be imported."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists (another user's counts; a zombie does too:
    it has not been reaped)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True
