"""The ``/ws`` transport: JSON text frames over a plain WebSocket, one hub client each.

A reader loop decodes each text frame (:func:`~api.realtime.protocol.decode_message`),
spends the socket's message budget and hands the message to the hub; a writer task beside
it drains the socket's outbox. A socket whose outbox overflows is closed with 1013 (the
client resumes with ``since``); one that floods, or passes a socket cap (per user, per
client address), gets an ``error`` frame and is closed with 1008.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from api.realtime.client import Client
from api.realtime.hub import Hub
from api.realtime.protocol import ClientError, decode_message

_INVALID_TOKEN = ClientError("unauthorized", "invalid token").frame()
_RATE_LIMITED = ClientError("rate_limited", "too many messages").frame()


async def serve_socket(hub: Hub, socket: WebSocket[Any, Any, Any]) -> None:
    """The life of one socket: reader loop here, writer task beside it."""
    await socket.accept()
    client = Client()
    try:
        hub.connect(client, socket.client.host if socket.client else None)
        token = socket.query_params.get("token")
        if token and not await hub.sign_in(client, token):
            client.outbox.put(_INVALID_TOKEN)
    except ClientError as e:  # a socket cap
        hub.remove(client)
        await _refuse(socket, e)
        return
    except BaseException:
        hub.remove(client)
        raise

    async def writer() -> None:
        outbox = client.outbox
        send = socket.send  # what send_text() calls, less two coroutine layers per frame
        while not client.closed.is_set():
            await outbox.ready.wait()
            if outbox.overflowed:
                await socket.close(code=1013, reason="too slow: reconnect with since")
                client.closed.set()
                return
            for data in outbox.take():
                await send({"type": "websocket.send", "bytes": None, "text": data.decode()})

    send_task = asyncio.create_task(writer())

    # A reader that stopped reading blocks the writer inside send: the overflow is acted
    # on from here, not from the writer's loop.
    def drop() -> None:
        send_task.cancel()

    client.outbox.on_overflow = drop
    try:
        while not client.closed.is_set():
            receive = asyncio.create_task(socket.receive_text())
            done, _ = await asyncio.wait({receive, send_task}, return_when=asyncio.FIRST_COMPLETED)
            if receive not in done:
                receive.cancel()
                with contextlib.suppress(BaseException):
                    await receive
                break
            raw = receive.result()
            if not client.allow_message():
                client.outbox.put(_RATE_LIMITED)
                await asyncio.sleep(0)
                await socket.close(code=1008, reason="too many messages")
                break
            try:
                await hub.handle(client, decode_message(raw))
            except ClientError as e:
                if e.close:  # a socket cap: its frame, then close; nothing else matters
                    send_task.cancel()
                    with contextlib.suppress(BaseException):
                        await send_task
                    await _refuse(socket, e)
                    break
                client.outbox.put(e.frame())
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.remove(client)
        send_task.cancel()
        with contextlib.suppress(BaseException):
            await send_task
        if client.outbox.overflowed:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(
                    socket.close(code=1013, reason="too slow: reconnect with since"), 1.0
                )


async def _refuse(socket: WebSocket[Any, Any, Any], error: ClientError) -> None:
    """The ``error`` frame of a socket cap, then close 1008 (policy violation)."""
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(socket.send_text(error.frame().decode()), 1.0)
        await asyncio.wait_for(socket.close(code=1008, reason=error.code), 1.0)


@websocket("/ws", exclude_from_auth=True)
async def ws_endpoint(socket: WebSocket[Any, Any, Any]) -> None:
    hub: Hub = socket.app.state["onsale"].hub
    await serve_socket(hub, socket)
