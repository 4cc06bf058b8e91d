"""Waiting for durability: ``CONFIRM_DURABILITY=store`` returns once the store holds the
order (:func:`wait_persisted`), woken early by a writer in the same process
(:class:`CommitSignal`)."""

from __future__ import annotations

import asyncio
import contextlib

from persistence.aio import AsyncStore


async def wait_persisted(
    store: AsyncStore,
    order_id: str,
    version: int,
    timeout: float,  # noqa: ASYNC109 - the bounded wait is the contract of this call
    *,
    poll_interval: float = 0.05,
    commits: CommitSignal | None = None,
) -> bool:
    """True once the store holds ``order_id`` at ``version`` or later, False after
    ``timeout`` seconds (``CONFIRM_DURABILITY=store``). Polls the store; a writer in this
    process (``commits``) wakes the poll as soon as it commits a batch."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        wake = commits.next_commit() if commits is not None else None
        stored = await store.get_order(order_id)
        if stored is not None and stored.version >= version:
            return True
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        pause = min(remaining, poll_interval)
        if wake is None:
            await asyncio.sleep(pause)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), pause)


class CommitSignal:
    """Wakes every waiter when the writer commits a batch."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def next_commit(self) -> asyncio.Event:
        return self._event

    def fire(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()
