"""The OpenAPI document is the contract: schemathesis, with every check, against a live
``onsale serve`` (so an answer the document does not declare fails the build), and the
document's own shape (errors, security, headers; the UIs served from packaged files).

The run is schemathesis' CLI as a user runs it: ``--checks all``, phases examples,
coverage, fuzzing and stateful, a fixed seed and ``ST_EXAMPLES`` examples per operation
(default 25: about 20-30 s on two cores), an ADMIN token on every request (the auth
checks send requests without it), from a temporary directory (schemathesis keeps a cache
in ``.schemathesis/`` where it runs). What the document cannot state is set aside by
tests/security/schemathesis_hooks.py, each for a written reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import REPO
from tests.security.conftest import ApiServer

pytestmark = pytest.mark.slow

SEED = 20261201
EXAMPLES = int(os.environ.get("ST_EXAMPLES", "25"))
PHASES = "examples,coverage,fuzzing,stateful"


def _schemathesis() -> str:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("schemathesis is not installed (the dev extra)")
    return found


def _document(api: ApiServer) -> dict[str, Any]:
    r = httpx.get(f"{api.url}/schema/openapi.json", timeout=30)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _operations(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    }


def test_schemathesis_every_check_passes(api: ApiServer, tmp_path: Path) -> None:
    cmd = [
        _schemathesis(),
        "run",
        f"{api.url}/schema/openapi.json",
        "--checks",
        "all",
        "--phases",
        PHASES,
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--workers",
        "2",
        "--no-color",
        "--header",
        f"Authorization: Bearer {api.tokens['ADMIN']}",
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.security.schemathesis_hooks",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    started = time.monotonic()
    done = subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=280, check=False
    )
    took = time.monotonic() - started
    out = done.stdout + done.stderr
    summary = out[out.rfind("SUMMARY") :] if "SUMMARY" in out else out[-3000:]
    print(f"schemathesis: {took:.0f}s\n{summary}")
    assert done.returncode == 0, out[-20000:]
    tested = re.search(r"Tested: (\d+)", out)
    assert tested and int(tested.group(1)) >= 30, summary


def test_every_operation_documents_its_problems(api: ApiServer) -> None:
    doc = _document(api)
    ops = _operations(doc)
    assert len(ops) >= 30, sorted(ops)
    assert "security" not in doc  # no global bearer requirement
    for key, op in ops.items():
        for status, response in op["responses"].items():
            content = response.get("content") or {}
            if int(status) >= 400 and key != "GET /health/ready":
                assert list(content) == ["application/problem+json"], (key, status)
                assert content["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"
                }
            if status in ("429", "503") and key != "GET /health/ready":
                assert response["headers"]["Retry-After"]["required"] is True, (key, status)
            for media in content.values():  # Litestar's {status_code, detail, extra}: gone
                assert "status_code" not in str(media.get("schema")), (key, status)
    problem = doc["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "instance", "code"} <= set(problem["required"])


def test_security_marks_exactly_the_operations_that_need_a_token(api: ApiServer) -> None:
    ops = _operations(_document(api))
    public = {
        "POST /api/auth/login",
        "POST /api/auth/register",
        "GET /api/events",
        "GET /api/events/search",
        "GET /api/events/{event_id}",
        "GET /api/events/{event_id}/categories",
        "GET /api/events/{event_id}/queue",
        "GET /health/live",
        "GET /health/ready",
    }
    for key, op in ops.items():
        if key in public:
            assert "security" not in op, key
            if key != "POST /api/auth/login":  # which answers 401 to bad credentials
                assert "401" not in op["responses"], key
        else:
            assert op.get("security") == [{"BearerToken": []}], key
            assert "401" in op["responses"], key


def test_the_hold_documents_its_headers(api: ApiServer) -> None:
    hold = _operations(_document(api))["POST /api/orders"]
    created = hold["responses"]["201"]
    assert "RESERVED" in created["description"] and "HELD" not in created["description"]
    assert "Idempotent-Replayed" in created["headers"]
    params = {p["name"]: p for p in hold["parameters"] if p["in"] == "header"}
    assert {"Idempotency-Key", "Admission-Token"} <= set(params)
    assert params["Idempotency-Key"]["description"]
    assert {"409", "422", "429"} <= set(hold["responses"])


def test_request_bodies_refuse_unknown_fields_in_the_document(api: ApiServer) -> None:
    schemas = _document(api)["components"]["schemas"]
    for name in ("RegisterIn", "LoginIn", "EventIn", "OrderIn", "TicketIn", "WebhookIn"):
        assert schemas[name]["additionalProperties"] is False, name
    password = schemas["RegisterIn"]["properties"]["password"]
    assert (password["minLength"], password["maxLength"]) == (8, 72)
    capacity = schemas["EventPatch"]["properties"]["capacidadTotal"]["anyOf"][0]
    assert capacity["minimum"] == 0  # Litestar alone drops a bound of 0 on optional fields


@pytest.mark.parametrize("page", ["/schema", "/schema/swagger", "/schema/scalar"])
def test_the_uis_use_packaged_assets_only(api: ApiServer, page: str) -> None:
    r = httpx.get(f"{api.url}{page}", timeout=30)
    assert r.status_code == 200, r.text
    csp = r.headers["content-security-policy"]
    script_src = re.search(r"script-src ([^;]*)", csp)
    assert script_src and script_src.group(1).strip() == "'self'", csp
    assert "http" not in csp and "cdn" not in csp, csp
    html = r.text
    assert "<script>" not in html and "<script type" not in html  # no inline script
    urls = re.findall(r"(?:src|href)=['\"]([^'\"]+)['\"]", html)
    assert urls, html
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = httpx.get(f"{api.url}{url}", timeout=30)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0, url
