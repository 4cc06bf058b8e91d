"""A socket's send queue: bounded, conflating stock updates per category.

Both transports drain an :class:`Outbox` with one writer task per socket, woken through its
:class:`Ready`. Stock updates are conflated to the latest value per category (moved to the
end, so delivered ids only grow); other frames are kept in order up to a bound, past which
the outbox is marked overflowed and the transport drops the socket (the client resumes
with ``since``). A slow reader therefore never slows others nor grows memory unbounded.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from collections.abc import Callable, Hashable

MAX_QUEUED_FRAMES = 2000


class Ready:
    """``asyncio.Event`` for one waiter (the socket's writer): a fan-out sets thousands of
    these per feed read, and this one wakes its writer with one future, no waiter list."""

    __slots__ = ("_value", "_waiter")

    def __init__(self) -> None:
        self._value = False
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if not self._value:
            self._value = True
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        if self._waiter is not None:
            raise RuntimeError("Ready has one waiter at a time")
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        return True


class Outbox:
    """A socket's bounded send queue with per-category conflation of stock updates."""

    def __init__(self, max_frames: int = MAX_QUEUED_FRAMES) -> None:
        self.max_frames = max_frames
        self.frames: OrderedDict[Hashable, bytes] = OrderedDict()
        self.ready = Ready()
        self.overflowed = False
        self.on_overflow: Callable[[], None] | None = None
        self._seq = itertools.count()

    def put(self, frame: bytes, conflate_key: Hashable | None = None) -> None:
        if conflate_key is not None:
            self.frames.pop(conflate_key, None)  # the newer value goes to the end
            self.frames[conflate_key] = frame
        else:
            self.frames[next(self._seq)] = frame
        if len(self.frames) > self.max_frames and not self.overflowed:
            self.overflowed = True
            if self.on_overflow is not None:
                self.on_overflow()  # the transport drops the socket even mid-send
        self.ready.set()

    def take(self) -> list[bytes]:
        out = list(self.frames.values())
        self.frames.clear()
        self.ready.clear()
        return out
