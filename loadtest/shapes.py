"""Load shapes for locust, picked by name with ``LOCUST_SHAPE`` (``make loadtest`` and the
locustfile): without it users spawn linearly at ``--spawn-rate``.

    flash   the flash crowd of an on-sale opening: every user arrives within the first
            seconds (the spike at opening), then the crowd decays exponentially (half-life
            a fifth of the run) towards a tenth of the peak, the buyers who stay on

The peak is ``--users`` and the length ``--run-time`` (``use_common_options``), so
``LOCUST_USERS`` and ``LOCUST_DURATION`` size a shaped run as they size a linear one.
"""

from __future__ import annotations

import math
from typing import Any

from locust import LoadTestShape


class FlashCrowd(LoadTestShape):
    """A spike to ``--users`` at opening, then exponential decay to a tenth of it."""

    use_common_options = True
    spike_s = 3.0  # all of the crowd within this long
    floor = 0.1  # the fraction of the peak left at the end

    def _options(self) -> tuple[int, float]:
        options: Any = self.runner.environment.parsed_options if self.runner else None
        users = int(getattr(options, "num_users", None) or 100)
        run_time = float(getattr(options, "run_time", None) or 60)
        return users, run_time

    def users_at(self, t: float, peak: int, run_time: float) -> int:
        if t < self.spike_s:
            return max(1, math.ceil(peak * (t + 1) / (self.spike_s + 1)))
        half_life = max(1.0, run_time / 5)
        decayed = peak * 0.5 ** ((t - self.spike_s) / half_life)
        return max(1, math.ceil(max(peak * self.floor, decayed)))

    def tick(self) -> tuple[int, float] | None:
        peak, run_time = self._options()
        t = self.get_run_time()
        if t >= run_time:
            return None
        # Arrivals as fast as the spike needs; departures at the same rate.
        return self.users_at(t, peak, run_time), max(1.0, peak / self.spike_s)


SHAPES: dict[str, type[LoadTestShape]] = {"flash": FlashCrowd}


def shape_named(name: str) -> type[LoadTestShape] | None:
    """The shape class called ``name`` (``""``: none, linear spawning)."""
    name = name.strip().lower()
    if not name:
        return None
    if name not in SHAPES:
        raise SystemExit(f"LOCUST_SHAPE={name!r}: expected one of {', '.join(sorted(SHAPES))}")
    return SHAPES[name]
