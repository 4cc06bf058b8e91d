"""Attack and fuzzing fixtures: the integration suite's real ``onsale serve`` processes
(re-exported here so pytest finds them) and the fault suite's helpers."""

from __future__ import annotations

from tests.faults.conftest import (
    PROBLEM,
    ApiServer,
    api,
    api_factory,
    assert_problem,
    auth,
    create_event,
    register,
    start_api,
    wait_until,
    worker_pids,
)

__all__ = [
    "PROBLEM",
    "ApiServer",
    "api",
    "api_factory",
    "assert_problem",
    "auth",
    "create_event",
    "register",
    "start_api",
    "wait_until",
    "worker_pids",
]
