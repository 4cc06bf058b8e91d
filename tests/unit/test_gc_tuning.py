"""The API worker's garbage-collector settings (api.runtime.tune_gc)."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import gc, json
from api.runtime import GC_YOUNG_THRESHOLD, tune_gc
before = {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}
tune_gc()
print(json.dumps({"before": before, "threshold": gc.get_threshold(),
                  "frozen": gc.get_freeze_count(), "young": GC_YOUNG_THRESHOLD}))
"""


def test_start_up_objects_are_frozen_and_young_collections_are_rarer() -> None:
    # A fresh interpreter: freezing is process-wide and would leak into the test process.
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
    ).stdout
    state = json.loads(out)
    assert state["before"]["frozen"] == 0
    assert state["frozen"] > 10_000  # every module and object alive at start-up
    assert state["threshold"][0] == state["young"] > state["before"]["threshold"][0]
    assert state["threshold"][1:] == state["before"]["threshold"][1:]
