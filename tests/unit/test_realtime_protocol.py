"""The real-time protocol's types keep the wire bytes the clients (and the Socket.IO JS
client) were written against, and refuse bad input with the same error frames."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from api.realtime import protocol as p
from engine.vocabulary import OrderStatus, Role


def as_dicts(event: str, data: Any, id_: str | None = None) -> bytes:
    """How the frames were built before they were types."""
    body: dict[str, Any] = {"event": event, "data": data}
    if id_ is not None:
        body["id"] = id_
    return msgspec.json.encode(body)


@pytest.mark.parametrize(
    ("frame", "wire"),
    [
        (
            p.Error(data=p.Refusal(code="c", message="m")),
            as_dicts("error", {"code": "c", "message": "m"}),
        ),
        (
            p.Joined(data=p.EventRoomJoined(event_id="e1", id="5-1", replayed=2, snapshot=False)),
            as_dicts(
                "joined",
                {"room": "event", "eventId": "e1", "id": "5-1", "replayed": 2, "snapshot": False},
            ),
        ),
        (
            p.Joined(data=p.UserRoomJoined(user_id="u1")),
            as_dicts("joined", {"room": "user", "userId": "u1"}),
        ),
        (
            p.Left(data=p.EventRoomLeft(event_id="e1")),
            as_dicts("left", {"room": "event", "eventId": "e1"}),
        ),
        (
            p.Left(data=p.UserRoomLeft(user_id="u1")),
            as_dicts("left", {"room": "user", "userId": "u1"}),
        ),
        (
            p.Authenticated(data=p.Identity(user_id="u1", role=Role.ORGANIZER)),
            as_dicts("authenticated", {"userId": "u1", "role": "ORGANIZADOR"}),
        ),
        (
            p.StockSnapshot(
                data=p.StockUpdate(event_id="e1", category_id="a", available=7), id="9-0"
            ),
            as_dicts(
                "ticket:stock-update",
                {"eventoId": "e1", "categoriaId": "a", "nuevoStock": 7},
                "9-0",
            ),
        ),
    ],
)
def test_server_frames_keep_their_wire_bytes(frame: p.ServerFrame, wire: bytes) -> None:
    assert p.encode(frame) == wire


def test_a_feed_frame_embeds_the_stored_data_as_is() -> None:
    data = b'{"orderId":"e1.x","nuevoEstado":"EXPIRED","expiraEn":null}'
    frame = p.feed_frame("order:status-change", data, "1700000000000-3")
    assert frame == b'{"event":"order:status-change","data":%s,"id":"1700000000000-3"}' % data
    decoded = p.decode_frame(frame)
    assert (decoded.event, decoded.id) == ("order:status-change", "1700000000000-3")


def test_feed_payload_types_read_what_the_scripts_store() -> None:
    stored = {
        "ticket:stock-update": {"eventoId": "e1", "categoriaId": "a", "nuevoStock": 3},
        "ticket:almost-sold-out": {"eventoId": "e1", "categoriaId": "a", "stockRestante": 3},
        "event:update": {"eventoId": "e1", "cambios": {"enVenta": True}},
        "order:status-change": {"orderId": "e1.x", "nuevoEstado": "CONFIRMED", "expiraEn": None},
        "waitlist:offer": {
            "eventoId": "e1",
            "categoriaId": "a",
            "orderId": "e1.x",
            "expiraEn": "2030-01-01T00:00:00.000Z",
        },
        "waitlist:closed": {"eventoId": "e1", "categoriaId": "a", "motivo": "category_removed"},
        "queue:admitted": {
            "eventoId": "e1",
            "admisionToken": "t",
            "admisionExpiraEn": "2030-01-01T00:00:00.000Z",
        },
        "queue:sold-out": {"eventoId": "e1"},
        "queue:update": {"eventoId": "e1", "estado": "ABIERTA", "enCola": 3, "admitidos": 1},
    }
    assert set(stored) == set(p.FEED_PAYLOADS)
    assert set(stored) == p.ROOM_EVENTS | p.USER_EVENTS | p.QUEUE_EVENTS
    for name, data in stored.items():
        decoded = msgspec.json.decode(msgspec.json.encode(data), type=p.FEED_PAYLOADS[name])
        assert msgspec.to_builtins(decoded) == data
    order = msgspec.convert(stored["order:status-change"], p.OrderStatusChange)
    assert order.status is OrderStatus.CONFIRMED


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"event":"auth","data":{"token":"t"}}', p.Auth(data=p.Credentials(token="t"))),
        ('{"data":{"eventId":"e1"},"event":"join:event"}', p.JoinEvent(data=p.EventJoin("e1"))),
        (
            '{"event":"join:event","data":{"eventId":"e1","since":"17-2"},"extra":1}',
            p.JoinEvent(data=p.EventJoin("e1", since="17-2")),
        ),
        (
            '{"event":"join:event","data":{"eventId":"e1","since":null}}',
            p.JoinEvent(data=p.EventJoin("e1")),
        ),
        ('{"event":"leave:event","data":{"eventId":"e1"}}', p.LeaveEvent(data=p.EventRef("e1"))),
        ('{"event":"join:user","data":{"userId":"u1"}}', p.JoinUser(data=p.UserRef("u1"))),
        ('{"event":"leave:user","data":{"userId":"u1"}}', p.LeaveUser(data=p.UserRef("u1"))),
    ],
)
def test_client_messages_decode_to_their_types(raw: str, expected: p.ClientMessage) -> None:
    assert p.decode_message(raw) == expected


@pytest.mark.parametrize(
    ("raw", "code", "message"),
    [
        ("not json", "bad_message", "messages are JSON objects"),
        ("[1, 2", "bad_message", "messages are JSON objects"),
        ("[1, 2]", "bad_message", 'expected {"event": ..., "data": {...}}'),
        ('{"event": 3}', "bad_message", 'expected {"event": ..., "data": {...}}'),
        ('{"data": 3, "event": 3}', "bad_message", 'expected {"event": ..., "data": {...}}'),
        ('{"event": "nope", "data": 3}', "bad_message", "data must be an object"),
        ('{"event": "join:event", "data": null}', "bad_message", "data must be an object"),
        ('{"event": "nope"}', "unknown_event", "unknown event 'nope'"),
        ('{"event": "join:event"}', "bad_message", "eventId must be an id"),
        (
            '{"event": "join:event", "data": {"eventId": "../x"}}',
            "bad_message",
            "eventId must be an id",
        ),
        (
            '{"event": "join:event", "data": {"since": 5, "eventId": 1}}',
            "bad_message",
            "eventId must be an id",
        ),
        (
            '{"event": "join:event", "data": {"eventId": "e1", "since": "5-"}}',
            "bad_message",
            "since must be a stream id like 1700000000000-0",
        ),
        (
            '{"event": "join:event", "data": {"eventId": "e1", "since": 5}}',
            "bad_message",
            "since must be a stream id like 1700000000000-0",
        ),
        # Past Redis' 64-bit range: Redis would refuse it (a socket dropped, once).
        (
            '{"event": "join:event", "data": {"eventId": "e1", "since": "99999999999999999999-0"}}',
            "bad_message",
            "since must be a stream id like 1700000000000-0",
        ),
        (
            '{"event": "join:event", "data": {"eventId": "e1", "since": "1-18446744073709551616"}}',
            "bad_message",
            "since must be a stream id like 1700000000000-0",
        ),
        ('{"event": "join:user", "data": {"userId": ""}}', "bad_message", "userId must be an id"),
        ('{"event": "leave:user", "data": {}}', "bad_message", "userId must be an id"),
        ('{"event": "auth", "data": {"token": 5}}', "unauthorized", "invalid token"),
        ('{"event": "auth"}', "unauthorized", "invalid token"),
    ],
)
def test_bad_messages_are_refused_with_what_is_wrong_first(
    raw: str, code: str, message: str
) -> None:
    with pytest.raises(p.ClientError) as refused:
        p.decode_message(raw)
    assert (refused.value.code, refused.value.message) == (code, message)
    assert refused.value.frame() == as_dicts("error", {"code": code, "message": message})


def test_socketio_events_decode_through_the_same_types() -> None:
    assert p.message_from("join:event", {"eventId": "e1"}) == p.JoinEvent(data=p.EventJoin("e1"))
    for event, data, code, message in [
        (3, {}, "bad_message", "event names are strings"),
        ("join:event", None, "bad_message", "data must be an object"),
        ("join:event", ["e1"], "bad_message", "data must be an object"),
        ("nope", {}, "unknown_event", "unknown event 'nope'"),
        ("join:user", {"userId": "a b"}, "bad_message", "userId must be an id"),
        ("auth", {}, "unauthorized", "invalid token"),
        (
            "join:event",
            {"eventId": "e1", "since": "99999999999999999999-0"},
            "bad_message",
            "since must be a stream id like 1700000000000-0",
        ),
    ]:
        with pytest.raises(p.ClientError) as refused:
            p.message_from(event, data)
        assert (refused.value.code, refused.value.message) == (code, message), (event, data)


def test_the_largest_stream_id_redis_takes_is_accepted() -> None:
    top = "18446744073709551615-18446744073709551615"
    assert p.message_from("join:event", {"eventId": "e1", "since": top}) == p.JoinEvent(
        data=p.EventJoin("e1", since=top)
    )
