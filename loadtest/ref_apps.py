"""The two reference servers ``bench_http`` measures the hold against, in the same run.

* :func:`bare` -- a bare ASGI app: the request body decoded by msgspec into the same
  ``EchoIn`` struct onsale's ``/bench/echo`` takes, encoded back, 201. What uvicorn +
  httptools + msgspec cost with no framework at all.
* :func:`plain_litestar` -- a plain Litestar app with one POST route taking the same
  msgspec body (no middleware, no auth, no hooks): what the framework itself costs.

Both are served the way ``onsale serve`` serves onsale (uvicorn, httptools, uvloop when
installed, no access log), one worker pinned to the same core:

    python -m uvicorn --factory loadtest.ref_apps:bare --http httptools --no-access-log
"""

from __future__ import annotations

from typing import Any

import msgspec

from api.app import EchoIn

_decode = msgspec.json.Decoder(EchoIn).decode
_encode = msgspec.json.Encoder().encode
_HEADERS = [(b"content-type", b"application/json")]


def bare() -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            out, status = _encode(_decode(body)), 201
        except msgspec.MsgspecError:
            out, status = b'{"error":"bad body"}', 400
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*_HEADERS, (b"content-length", str(len(out)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": out})

    return app


def plain_litestar() -> Any:
    from litestar import Litestar, post

    @post("/bench/echo", status_code=201)
    async def echo(data: EchoIn) -> EchoIn:
        return data

    return Litestar(route_handlers=[echo], debug=False, logging_config=None)
