"""An asyncio transport that keeps what is written to it, for driving uvicorn's protocol
and its request cycles in-process (tests/unit/test_hot_http.py, test_http_protocol.py)."""

from __future__ import annotations

import asyncio
from typing import Any


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default
