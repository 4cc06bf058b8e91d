"""Persistence: the store port (users, events, orders), its adapters and the order writer.

* :mod:`persistence.store` — the domain Structs and the :class:`~persistence.store.Store`
  protocol (the port; it imports no adapter).
* :mod:`persistence.factory` — :func:`~persistence.factory.open_store`, which picks the
  adapter from the configuration.
* :mod:`persistence.sqlite` — the embedded adapter (one SQLite file, the default).
* :mod:`persistence.mongo` — the MongoDB adapter (replica set, majority writes).
* :mod:`persistence.aio` — :class:`~persistence.aio.AsyncStore`, the port as coroutines.
* :mod:`persistence.writer` — the order writer (a package, one module per job): Redis
  order logs -> the store; :func:`~persistence.writer.build_writer` builds it.

Nothing here knows about HTTP. See docs/persistence.md.
"""
