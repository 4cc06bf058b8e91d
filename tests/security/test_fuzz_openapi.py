"""Fuzz every operation of the OpenAPI document (``/schema/openapi.json``) with schemathesis
against a live ``onsale serve``: no 5xx, and every error is RFC 9457 problem+json.

Each operation gets schema-conforming (positive) and schema-violating (negative) requests,
once with generated ids and once with the ids of a real event, category and order in the
path and in order bodies (so the handlers run past their 404s and holds reach the
engine), all with a valid ADMIN token. Seeded: every run sends
the same requests. ``FUZZ_EXAMPLES`` (per operation, mode and id source) sizes the run;
the default (60, about 5,000 requests) fits about two minutes on the two-core CI machine.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.security.conftest import PROBLEM, ApiServer, auth, create_event

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

pytestmark = pytest.mark.slow

SEED = 20261128
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


def _world(api: ApiServer, token: str) -> dict[str, str]:
    """A fresh event with a category and a held order, for one operation's real-id run."""
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 10, 1000)])
    category = event["categorias"][0]["id"]
    body = {"eventoId": event["id"], "tickets": [{"categoriaId": category, "cantidad": 1}]}
    r = httpx.post(f"{api.url}/api/orders", json=body, headers=auth(token), timeout=30)
    assert r.status_code == 201, r.text
    return {"event_id": event["id"], "category_id": category, "order_id": r.json()["id"]}


def _plant(world: dict[str, str]) -> Any:
    """Put real ids into generated bodies (order creation), so holds reach the engine."""

    def plant(case: Any) -> Any:
        body = case.body
        if isinstance(body, dict):
            if "eventoId" in body:
                body["eventoId"] = world["event_id"]
            tickets = body.get("tickets")
            for line in tickets if isinstance(tickets, list) else []:
                if isinstance(line, dict) and "categoriaId" in line:
                    line["categoriaId"] = world["category_id"]
        return case

    return plant


def _violation(response: Any) -> str | None:
    status = response.status_code
    if status >= 500:
        return f"server error {status}"
    if status >= 400:
        ctype = (response.headers.get("content-type") or [""])[0]
        if not ctype.startswith(PROBLEM):
            return f"{status} with content-type {ctype!r}"
        body = response.json()
        if body.get("status") != status or not body.get("title") or "detail" not in body:
            return f"{status} problem without status/title/detail: {body}"
        if "Traceback" in response.text:
            return f"{status} leaks a traceback"
    return None


def _fuzz(
    api: ApiServer, strategy: Any, label: str, failures: list[str], statuses: Counter[str]
) -> int:
    """Run one operation's seeded examples; violations go to ``failures``. Returns how
    many requests were sent."""
    headers = auth(api.tokens["ADMIN"])
    sent = 0

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        nonlocal sent
        response = case.call(
            base_url=api.url,
            headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
            timeout=30,
        )
        sent += 1
        statuses[f"{label.split(' [')[0]} {response.status_code}"] += 1
        problem = _violation(response)
        if problem:
            req = response.request
            failures.append(
                f"{label} {problem}: {req.method} {req.url} "
                f"body={str(req.body)[:300]} -> {response.text[:300]}"
            )

    run()
    return sent


def _violable(operation: Any) -> bool:
    """Whether a schema-violating request exists: schemathesis does not make invalid path
    parameters (they would not reach the operation), so a public operation with only an
    id in its path has nothing to get wrong."""
    params = [p for p in operation.iter_parameters() if str(p.location.value) != "path"]
    return bool(params or operation.body)


def test_fuzz_every_operation_no_5xx_and_problem_json_errors(api: ApiServer) -> None:
    schema = schemathesis.openapi.from_url(f"{api.url}/schema/openapi.json")
    failures: list[str] = []
    statuses: Counter[str] = Counter()
    sent = 0
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, [op.label for op in operations]
    for operation in operations:
        names = {p.name for p in operation.path_parameters}
        for mode in MODES:
            if mode is GenerationMode.NEGATIVE and not _violable(operation):
                continue  # nothing to violate (see _violable)
            for real_ids in (False, True) if names or operation.body else (False,):
                strategy = operation.as_strategy(generation_mode=mode)
                if real_ids:
                    world = _world(api, api.tokens["COMPRADOR"])
                    fixed = {name: world[name] for name in names if name in world}
                    strategy = operation.as_strategy(
                        generation_mode=mode, path_parameters=fixed or None
                    ).map(_plant(world))
                label = f"{operation.label} [{mode.value}{', real ids' if real_ids else ''}]"
                sent += _fuzz(api, strategy, label, failures, statuses)
    took = time.monotonic() - started
    print(f"fuzz: {sent} requests over {len(operations)} operations in {took:.0f}s")
    print("fuzz statuses:", dict(sorted(statuses.items())))
    assert not failures, f"{len(failures)} violations:\n" + "\n".join(failures[:20])
