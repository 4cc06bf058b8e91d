"""Logging for every onsale process: one configuration, applied once per process.

The standard library's ``logging`` with python-json-logger's formatter, rather than
structlog: every library here (uvicorn, Litestar, redis-py, pymongo, python-socketio, the
engine and the writer) already logs through stdlib loggers, and uvicorn takes a plain
``logging.config.dictConfig`` dictionary (``log_config``) that it applies itself in every
``--workers N`` child. A dictionary of stdlib formatters and filters therefore reaches the
children with nothing else to set up, and no log call in the code has to change; structlog
would add a second logging pipeline to bridge back into the stdlib one for the same result.

``LOG_FORMAT=json`` (the default when ``APP_ENV=production``): every line is one JSON
object, ``{"ts", "level", "logger", "message", ...}``, with the request id
(``request_id``) on every line logged while a request is served, uvicorn's access lines as
fields (``client``, ``method``, ``path``, ``status``), and a traceback as the ``exc_info``
field of its line. ``LOG_FORMAT=text``: readable lines for a terminal.

The request id: :func:`request_id_of` picks the client's ``X-Request-Id`` when it is sane
(at most 128 characters of ``[A-Za-z0-9._-]``), else makes one; the ASGI wrapper in
``api.app`` keeps it in :data:`REQUEST_ID` (a contextvar: each request runs in its own
task, so nothing leaks between requests) and returns it in the response, and
:class:`RequestIdFilter` copies it onto every record.
"""

from __future__ import annotations

import itertools
import logging
import logging.config
import os
import re
import sys
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

# The id as the response header carries it (bytes): decoded only when a line is logged.
REQUEST_ID: ContextVar[bytes | None] = ContextVar("onsale_request_id", default=None)
REQUEST_ID_HEADER = b"x-request-id"
_SANE_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")
# Generated ids: a random per-process prefix and a counter (unique across processes and
# restarts in practice, and ~5x cheaper than a uuid4 per request).
_PREFIX = os.urandom(6).hex()
_COUNTER = itertools.count(1)

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s%(rid)s %(message)s"
TEXT_DATEFMT = "%H:%M:%S"
BANNER_LOGGER = "onsale"


def request_id_of(headers: Any) -> bytes:
    """The request's id: its ``X-Request-Id`` when sane, else a new one (ASCII bytes)."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if _SANE_ID.fullmatch(value):
                return bytes(value)
            break
    return f"{_PREFIX}-{next(_COUNTER):x}".encode()


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on the record (``request_id``) when there is one."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = REQUEST_ID.get()
        if rid is not None:
            record.request_id = rid.decode()
        return True


class AccessFieldsFilter(logging.Filter):
    """uvicorn's access line as fields: its record's args are
    ``(client, method, path, http_version, status)``."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            record.client, record.method, record.path, record.http_version, record.status = args
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object per record: ``ts`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, then the record's extra fields (``request_id``, access fields, ...);
    a traceback is the ``exc_info`` string field."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", ["levelname", "name", "message"])
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", "ts")
        # uvicorn adds an ANSI-coloured copy of its message; the text filter's helper too.
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "color_message", "rid"])
        super().__init__(*args, **kwargs)


class TextFormatter(logging.Formatter):
    """``12:00:00 INFO    api.errors [<request id>] message``: for a terminal."""

    def __init__(self, fmt: str = TEXT_FORMAT, datefmt: str = TEXT_DATEFMT) -> None:
        super().__init__(fmt, datefmt)

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None)
        record.rid = f" [{rid}]" if rid else ""
        return super().format(record)


def log_format_default(app_env: str) -> str:
    return "json" if app_env == "production" else "text"


def log_config(log_format: str, level: str = "info") -> dict[str, Any]:
    """The ``logging.config.dictConfig`` dictionary of every onsale process, uvicorn's
    ``log_config`` too (so each ``--workers N`` child applies it). Application and
    uvicorn error lines go to stderr, access lines to stdout, as uvicorn does."""
    formatter = (
        {"()": "api.logs.JsonFormatter"}
        if log_format == "json"
        else {"()": "api.logs.TextFormatter"}
    )
    filters = ["request_id"]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "api.logs.RequestIdFilter"},
            "access_fields": {"()": "api.logs.AccessFieldsFilter"},
        },
        # uvicorn sets use_colors on formatters named "default" and "access" when asked.
        "formatters": {"default": dict(formatter), "access": dict(formatter)},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": filters,
            },
            "access": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "access",
                "filters": [*filters, "access_fields"],
            },
            "banner": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "default",
            },
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
        "loggers": {
            "uvicorn": {"level": level.upper(), "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level.upper(), "propagate": True},
            "uvicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
            # The banner is always shown, whatever LOG_LEVEL.
            BANNER_LOGGER: {"level": "INFO", "handlers": ["banner"], "propagate": False},
        },
    }


_configured: tuple[str, str] | None = None


def configure(log_format: str, level: str = "info") -> dict[str, Any]:
    """Apply :func:`log_config` to this process (once: a second call with the same
    arguments changes nothing) and return it, for uvicorn's ``log_config``. Python
    warnings go through logging too (``py.warnings``), so they are JSON lines as well."""
    global _configured
    config = log_config(log_format, level)
    if _configured != (log_format, level):
        logging.config.dictConfig(config)
        logging.captureWarnings(True)
        _configured = (log_format, level)
    return config


def banner(log_format: str, lines: list[str], **fields: Any) -> None:
    """The start-up banner: plain lines on stdout in text mode, one JSON record with
    ``fields`` in JSON mode."""
    if log_format == "json":
        logging.getLogger(BANNER_LOGGER).info(lines[0], extra=fields)
        return
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
