"""Persistence: the store port (users, events, orders), its adapters and the order writer.

* :mod:`persistence.store` — the domain Structs, the :class:`~persistence.store.Store`
  protocol and :func:`~persistence.store.open_store`.
* :mod:`persistence.sqlite` — the embedded adapter (one SQLite file, the default).
* :mod:`persistence.mongo` — the MongoDB adapter (replica set, majority writes).
* :mod:`persistence.aio` — :class:`~persistence.aio.AsyncStore`, the port as coroutines.
* :mod:`persistence.writer` — the order writer: Redis order logs -> the store.

Nothing here knows about HTTP. See docs/persistence.md.
"""
