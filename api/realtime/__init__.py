"""Real-time delivery: the events' feeds to WebSocket and Socket.IO clients.

* :mod:`~api.realtime.protocol` — every frame in and out, as msgspec types.
* :mod:`~api.realtime.outbox` — a socket's bounded, conflating send queue.
* :mod:`~api.realtime.client` — one socket's rooms, cursors and message budget.
* :mod:`~api.realtime.fanout` — one feed read to every local subscriber.
* :mod:`~api.realtime.hub` — the process's rooms, the join/leave rules, client messages.
* :mod:`~api.realtime.user_feeds` — the feeds tailed for open user rooms.
* :mod:`~api.realtime.ws` — the ``/ws`` transport.
* :mod:`~api.realtime.socketio` — the Socket.IO transport at ``/socket.io/``.
* :mod:`~api.realtime.engineio_seam` — the one place python-socketio internals are used.
"""
