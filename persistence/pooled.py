"""The base of the async wrappers (:class:`persistence.aio.AsyncStore`,
:class:`persistence.webhooks.AsyncWebhookStore`): a blocking adapter's calls run on a
bounded ``ThreadPoolExecutor`` of the wrapper's own and are awaited, so the event loop
never blocks on the database."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, ParamSpec, Protocol, TypeVar

from persistence.errors import StoreError

P = ParamSpec("P")
R = TypeVar("R")


class Closeable(Protocol):
    def close(self) -> None: ...


S = TypeVar("S", bound=Closeable)


class PooledAdapter(Generic[S]):
    """``store``'s calls run in a pool of ``max_workers`` threads named
    ``thread_name_prefix``; after :meth:`close`, calls raise ``StoreError(closed_message)``."""

    def __init__(
        self, store: S, *, max_workers: int, thread_name_prefix: str, closed_message: str
    ) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix=thread_name_prefix
        )
        self._closed_message = closed_message
        self._closed = False

    async def _run(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        if self._closed:
            raise StoreError(self._closed_message)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    async def close(self) -> None:
        """Let running calls finish, then close the adapter. Idempotent."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, functools.partial(self._pool.shutdown, wait=True))
        self.store.close()
