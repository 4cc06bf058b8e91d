"""api/logs.py: the request id, the JSON and text formatters, the configuration uvicorn is
given, and the LOG_FORMAT / ACCESS_LOG settings."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from api import logs
from api.app import with_security_headers
from api.settings import SettingsError, load_settings


def test_a_sane_request_id_is_kept_else_one_is_made() -> None:
    assert logs.request_id_of([(b"x-request-id", b"abc-DEF_1.2")]) == b"abc-DEF_1.2"
    assert logs.request_id_of([(b"x-request-id", b"a" * 128)]) == b"a" * 128
    made = {logs.request_id_of([(b"x-request-id", bad)]) for bad in (b"a" * 129, b"a b", b"")}
    made.add(logs.request_id_of([]))
    assert len(made) == 4  # each one new
    assert all(logs._SANE_ID.fullmatch(rid) for rid in made)


def _record_through(config: dict[str, Any], handler: str, record: logging.LogRecord) -> str:
    formatter_config = config["formatters"][config["handlers"][handler]["formatter"]]
    factory = {
        "api.logs.JsonFormatter": logs.JsonFormatter,
        "api.logs.TextFormatter": logs.TextFormatter,
    }
    formatter = factory[formatter_config["()"]]()
    for name in config["handlers"][handler].get("filters", []):
        {"request_id": logs.RequestIdFilter(), "access_fields": logs.AccessFieldsFilter()}[
            name
        ].filter(record)
    return formatter.format(record)


def test_json_lines_carry_tracebacks_and_quotes_as_fields() -> None:
    config = logs.log_config("json")
    try:
        raise ValueError('a "quoted"\nmessage')
    except ValueError:
        import sys

        record = logging.LogRecord(
            "api.x", logging.ERROR, __file__, 1, 'boom "%s"', ("x",), sys.exc_info()
        )
    token = logs.REQUEST_ID.set(b"rid-1")
    try:
        line = _record_through(config, "default", record)
    finally:
        logs.REQUEST_ID.reset(token)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == 'boom "x"'
    assert parsed["level"] == "ERROR" and parsed["logger"] == "api.x"
    assert parsed["request_id"] == "rid-1"
    assert "ValueError" in parsed["exc_info"] and "Traceback" in parsed["exc_info"]


def test_access_lines_become_fields() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "GET", "/api/events?page=2", "1.1", 200),
        None,
    )
    record.color_message = "\x1b[1m...\x1b[0m"
    parsed = json.loads(_record_through(logs.log_config("json"), "access", record))
    assert parsed["method"] == "GET" and parsed["path"] == "/api/events?page=2"
    assert parsed["status"] == 200 and parsed["client"] == "1.2.3.4:5"
    assert "color_message" not in parsed


def test_text_lines_are_readable() -> None:
    record = logging.LogRecord("api.x", logging.INFO, __file__, 1, "hello", (), None)
    record.request_id = "r-1"
    line = logs.TextFormatter().format(record)
    assert line.endswith("INFO    api.x [r-1] hello")


def test_every_log_line_of_a_request_has_its_id() -> None:
    """The ASGI wrapper of api.app sets the id before the app runs and returns it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.RequestIdFilter())
    logger = logging.getLogger("tests.request")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    sent: list[dict[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        logger.info("inside the request")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    import asyncio

    scope = {"type": "http", "path": "/x", "headers": [(b"x-request-id", b"given-1")]}
    try:
        asyncio.run(with_security_headers(inner)(scope, None, send))
    finally:
        logger.removeHandler(handler)
    assert json.loads(stream.getvalue())["request_id"] == "given-1"
    assert (b"x-request-id", b"given-1") in sent[0]["headers"]
    assert logs.REQUEST_ID.get() is None  # the request's context did not leak here


def test_configure_is_the_dictionary_uvicorn_gets() -> None:
    config = logs.log_config("json", "warning")
    assert config["root"]["level"] == "WARNING"
    assert config["loggers"]["uvicorn.access"]["propagate"] is False
    assert {"default", "access"} <= set(config["formatters"])  # uvicorn's use_colors names
    json.dumps(config)  # plain data: picklable for --workers children


@pytest.mark.parametrize(
    ("env", "fmt", "access"),
    [
        ({}, "text", False),
        ({"APP_ENV": "production"}, "json", True),
        ({"APP_ENV": "production", "LOG_FORMAT": "text", "ACCESS_LOG": "false"}, "text", False),
        ({"LOG_FORMAT": "JSON"}, "json", False),
    ],
)
def test_log_format_and_access_log_settings(env: dict[str, str], fmt: str, access: bool) -> None:
    if env.get("APP_ENV") == "production":
        env = {**env, "JWT_SECRET": "k" * 40}
    settings = load_settings(env)
    assert (settings.log_format, settings.access_log) == (fmt, access)


def test_a_bad_log_format_names_the_variable() -> None:
    with pytest.raises(SettingsError, match=r"^LOG_FORMAT="):
        load_settings({"LOG_FORMAT": "xml"})
