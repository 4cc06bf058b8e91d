"""WebSocket watchers: users holding a live ``/ws`` feed of a rush event open.

Each watcher joins one rush event and checks every frame:

* ``ticket:stock-update`` / ``ticket:almost-sold-out``: the stock is within
  ``0 .. cantidadTotal`` of a known category of that event;
* ids only grow: every frame's ``id`` is greater than the previous frame's on this socket,
  except the join snapshot, whose frames share the id of the feed entry they reflect;
* ``error`` frames and unexpected closes are failures (the socket resumes with ``since``).

Violations go to locust's failure statistics under ``WS ...`` names. One success entry per
socket per window carries the window's frame count (``response_length``) and the worst
commit-to-receipt latency of its live frames (``response_time``: the frame id's Redis time to now,
both clocks of this machine).
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from typing import Any

from locust import User, constant, tag, task
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection, connect

from loadtest.users import RushEvent, require_seed, stream_key, stream_ms

WINDOW_S = 2.0
RECV_POLL_S = 0.5


class FrameChecker:
    """The rules above, for one socket."""

    def __init__(self, event: RushEvent) -> None:
        self.totals = event.totals()
        self.event_id = event.id
        self.last: tuple[int, int] | None = None
        self.first: tuple[int, int] | None = None
        self.last_id: str | None = None

    def check(self, msg: dict[str, Any]) -> str | None:
        """The violation this frame shows, or None."""
        name, data, frame_id = msg.get("event"), msg.get("data") or {}, msg.get("id")
        if name == "error":
            return f"error frame: {data}"
        if frame_id is not None:
            key = stream_key(frame_id)
            if self.last is not None and key <= self.last:
                in_snapshot = key == self.last == self.first and name == "ticket:stock-update"
                if not in_snapshot:
                    return f"id {frame_id} not greater than the previous {self.last_id}"
            if self.first is None:
                self.first = key
            self.last, self.last_id = key, frame_id
        if name in ("ticket:stock-update", "ticket:almost-sold-out"):
            if data.get("eventoId") != self.event_id:
                return f"frame for event {data.get('eventoId')} on a socket of {self.event_id}"
            stock = data.get("nuevoStock", data.get("stockRestante"))
            total = self.totals.get(data.get("categoriaId", ""))
            if total is None:
                return f"unknown category {data.get('categoriaId')}"
            if not isinstance(stock, int) or stock < 0:
                return f"stock {stock} < 0 for category {data.get('categoriaId')}"
            if stock > total:
                return f"stock {stock} > total {total} for category {data.get('categoriaId')}"
        return None


class Watcher(User):
    weight = 4
    wait_time = constant(0)

    def on_start(self) -> None:
        self.event = random.choice(require_seed().rush_events)
        self.ws: ClientConnection | None = None
        self.checker = FrameChecker(self.event)
        self.resume_from: str | None = None

    def on_stop(self) -> None:
        self._close()

    def _close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):  # already gone: nothing to free
                self.ws.close()
            self.ws = None

    def _fire(self, name: str, elapsed_ms: float, length: int, error: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type="WS",
            name=name,
            response_time=elapsed_ms,
            response_length=length,
            exception=error,
            context={},
        )

    def _join(self) -> None:
        url = self.host.replace("http://", "ws://").replace("https://", "wss://") + "/ws"
        started = time.perf_counter()
        try:
            self.ws = connect(url, open_timeout=10, close_timeout=2, max_size=2**20)
            data: dict[str, Any] = {"eventId": self.event.id}
            if self.resume_from:
                data["since"] = self.resume_from
            self.ws.send(json.dumps({"event": "join:event", "data": data}))
        except (OSError, InvalidHandshake, TimeoutError) as e:
            self._fire("join:event", (time.perf_counter() - started) * 1000, 0, e)
            self._close()
            time.sleep(1)
            return
        self.checker = FrameChecker(self.event)
        self.joined_at = started
        self.live = False

    @tag("watchers")
    @task
    def watch(self) -> None:
        if self.ws is None:
            self._join()
            if self.ws is None:
                return
        frames, worst = 0, 0.0
        until = time.monotonic() + WINDOW_S
        while time.monotonic() < until:
            try:
                raw = self.ws.recv(timeout=RECV_POLL_S)
            except TimeoutError:
                continue
            except ConnectionClosed as e:
                code = e.rcvd.code if e.rcvd else None
                self._fire("closed by server", 0, 0, RuntimeError(f"socket closed, code {code}"))
                self.resume_from = self.checker.last_id
                self._close()
                return
            msg = json.loads(raw)
            if msg.get("event") == "joined":
                self._fire("join:event", (time.perf_counter() - self.joined_at) * 1000, 0, None)
                self.live = True
                continue
            problem = self.checker.check(msg)
            if problem is not None:
                self._fire("stock invariant", 0, 0, AssertionError(problem))
            if msg.get("event") == "ticket:stock-update" and msg.get("id"):
                frames += 1
                if self.live:  # not the snapshot or a replay
                    worst = max(worst, time.time() * 1000 - stream_ms(msg["id"]))
        if frames:
            self._fire("stock-update frames (worst latency per 2 s window)", worst, frames, None)
