"""The real-time wire protocol: every frame a client sends or receives, as msgspec types.

Both transports (``/ws`` and Socket.IO) speak it; nothing else in the package builds or
parses a frame. The envelope is ``{"event": name, "data": {...}}``, plus ``"id"`` (the
feed stream id) on frames that come from a feed.

Client messages are a tagged union on ``event`` (:data:`ClientMessage`), decoded by
:func:`decode_message` (a ``/ws`` text frame) or :func:`message_from` (a Socket.IO event,
whose name and argument arrive apart). Bad input is a :class:`ClientError`, answered with
an ``error`` frame; its code and message name the first thing wrong, checked in the order
the envelope, ``data``, the event name, then ``data``'s fields in declaration order (the
typed decode finds that something is wrong; :func:`_refusal` says what, off the hot path).

Server frames are :class:`ServerFrame` subclasses tagged on ``event``, encoded by
:func:`encode`. Feed frames are the exception that keeps fan-out cheap: the data a Lua
script stored is embedded as-is by :func:`feed_frame`, once per entry, and that one
``bytes`` goes to every subscriber. :data:`FEED_PAYLOADS` types what the scripts store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec

from engine.vocabulary import ID_RE, OrderStatus, Role

Id = Annotated[str, msgspec.Meta(pattern=ID_RE.pattern)]
StreamId = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,20}(-[0-9]{1,20})?\Z")]
"""A feed position such as ``1700000000000-0`` (the sequence part may be left out); each
part must also fit Redis' 64-bit range (:func:`valid_stream_id`)."""
MAX_STREAM_PART = 2**64 - 1


def valid_stream_id(value: str) -> bool:
    """Both parts of a :data:`StreamId` within Redis' unsigned 64-bit range (the pattern
    lets ``99999999999999999999`` through, which Redis refuses)."""
    return all(int(part) <= MAX_STREAM_PART for part in value.split("-"))


class ClientError(Exception):
    """A message the hub refuses; the client gets ``error {code, message}``. With
    ``close`` the transport closes the socket after that frame (a socket cap)."""

    def __init__(self, code: str, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.close = close

    def frame(self) -> bytes:
        return encode(Error(data=Refusal(code=self.code, message=self.message)))


# -- client -> server ------------------------------------------------------------------


class EventRef(msgspec.Struct, frozen=True):
    event_id: Id = msgspec.field(name="eventId")


class EventJoin(msgspec.Struct, frozen=True):
    event_id: Id = msgspec.field(name="eventId")
    since: StreamId | None = None
    """Resume after this feed id (replay what was missed) instead of a stock snapshot."""

    def __post_init__(self) -> None:
        if self.since is not None and not valid_stream_id(self.since):
            raise ValueError("since out of range")  # a ValidationError when decoding


class UserRef(msgspec.Struct, frozen=True):
    user_id: Id = msgspec.field(name="userId")


class Credentials(msgspec.Struct, frozen=True):
    token: str


class ClientMessageBase(msgspec.Struct, frozen=True, tag_field="event"):
    """``{"event": <tag>, "data": {...}}`` from a client."""


class Auth(ClientMessageBase, frozen=True, tag="auth"):
    data: Credentials


class JoinEvent(ClientMessageBase, frozen=True, tag="join:event"):
    data: EventJoin


class LeaveEvent(ClientMessageBase, frozen=True, tag="leave:event"):
    data: EventRef


class JoinUser(ClientMessageBase, frozen=True, tag="join:user"):
    data: UserRef


class LeaveUser(ClientMessageBase, frozen=True, tag="leave:user"):
    data: UserRef


class JoinQueue(ClientMessageBase, frozen=True, tag="join:queue"):
    """The signed-in buyer's socket follows their place in the event's admission queue:
    ``queue:position`` / ``queue:admitted`` / ``queue:sold-out`` frames, and it counts as
    their heartbeat while it stays open."""

    data: EventRef


class LeaveQueue(ClientMessageBase, frozen=True, tag="leave:queue"):
    data: EventRef


ClientMessage = Auth | JoinEvent | LeaveEvent | JoinUser | LeaveUser | JoinQueue | LeaveQueue
CLIENT_MESSAGES: dict[str, type[ClientMessage]] = {
    "auth": Auth,
    "join:event": JoinEvent,
    "leave:event": LeaveEvent,
    "join:user": JoinUser,
    "leave:user": LeaveUser,
    "join:queue": JoinQueue,
    "leave:queue": LeaveQueue,
}
# Checks a field's type cannot express, by wire name (run once the type matched).
_FIELD_CHECKS: dict[str, Callable[[Any], bool]] = {"since": valid_stream_id}
# What a bad field is answered with, by wire name.
_FIELD_REFUSALS: dict[str, tuple[str, str]] = {
    "eventId": ("bad_message", "eventId must be an id"),
    "userId": ("bad_message", "userId must be an id"),
    "since": ("bad_message", "since must be a stream id like 1700000000000-0"),
    "token": ("unauthorized", "invalid token"),
}
_NOT_AN_ENVELOPE = ClientError("bad_message", 'expected {"event": ..., "data": {...}}')

_decode_message = msgspec.json.Decoder(ClientMessage).decode


def decode_message(raw: str | bytes) -> ClientMessage:
    """A ``/ws`` text frame as a client message, or :class:`ClientError`."""
    try:
        return _decode_message(raw)
    except msgspec.DecodeError:  # ValidationError included
        pass
    try:
        message = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise ClientError("bad_message", "messages are JSON objects") from None
    if not isinstance(message, dict) or not isinstance(message.get("event"), str):
        raise _NOT_AN_ENVELOPE
    raise _refusal(message["event"], message.get("data", {}))


def message_from(event: Any, data: Any) -> ClientMessage:
    """A Socket.IO event (its name and first argument) as a client message."""
    if not isinstance(event, str):
        raise ClientError("bad_message", "event names are strings")
    try:
        message: ClientMessage = msgspec.convert({"event": event, "data": data}, ClientMessage)
    except msgspec.ValidationError:
        raise _refusal(event, data) from None
    return message


def _refusal(event: str, data: Any) -> ClientError:
    """What is wrong with a message the typed decode refused."""
    if not isinstance(data, dict):
        return ClientError("bad_message", "data must be an object")
    kind = CLIENT_MESSAGES.get(event)
    if kind is None:
        return ClientError("unknown_event", f"unknown event {event[:64]!r}")
    payload: Any = msgspec.structs.fields(kind)[0].type  # the type of ``data``
    for field in msgspec.structs.fields(payload):
        if field.encode_name not in data:
            if not field.required:
                continue
        else:
            try:
                value = msgspec.convert(data[field.encode_name], field.type)
                check = _FIELD_CHECKS.get(field.encode_name)
                if value is None or check is None or check(value):
                    continue
            except msgspec.ValidationError:
                pass
        return ClientError(*_FIELD_REFUSALS[field.encode_name])
    return _NOT_AN_ENVELOPE


# -- server -> client ------------------------------------------------------------------


class StockUpdate(msgspec.Struct, frozen=True):
    event_id: str = msgspec.field(name="eventoId")
    category_id: str = msgspec.field(name="categoriaId")
    available: int = msgspec.field(name="nuevoStock")


class AlmostSoldOut(msgspec.Struct, frozen=True):
    event_id: str = msgspec.field(name="eventoId")
    category_id: str = msgspec.field(name="categoriaId")
    remaining: int = msgspec.field(name="stockRestante")


class EventUpdate(msgspec.Struct, frozen=True):
    event_id: str = msgspec.field(name="eventoId")
    changes: dict[str, Any] = msgspec.field(name="cambios")


class OrderStatusChange(msgspec.Struct, frozen=True):
    order_id: str = msgspec.field(name="orderId")
    status: OrderStatus = msgspec.field(name="nuevoEstado")
    expires_at: str | None = msgspec.field(name="expiraEn")


class WaitlistOffer(msgspec.Struct, frozen=True):
    """Tickets returned for a waitlist entry: a RESERVED order for its buyer until
    ``expiraEn`` (the user's channel)."""

    event_id: str = msgspec.field(name="eventoId")
    category_id: str = msgspec.field(name="categoriaId")
    order_id: str = msgspec.field(name="orderId")
    expires_at: str = msgspec.field(name="expiraEn")


class WaitlistClosed(msgspec.Struct, frozen=True):
    """The buyer's waiting entry left a list that closed: ``motivo`` ``category_removed``
    (the organizer removed the category; the entry is gone). The user's channel."""

    event_id: str = msgspec.field(name="eventoId")
    category_id: str = msgspec.field(name="categoriaId")
    reason: str = msgspec.field(name="motivo")


class QueueAdmitted(msgspec.Struct, frozen=True):
    """The buyer is admitted: hold with ``Admission-Token: <admisionToken>`` before
    ``admisionExpiraEn`` (the user's channel)."""

    event_id: str = msgspec.field(name="eventoId")
    token: str = msgspec.field(name="admisionToken")
    expires_at: str = msgspec.field(name="admisionExpiraEn")


class QueueSoldOut(msgspec.Struct, frozen=True):
    """Every waiting buyer of the event's queue: sold out (the queue is AGOTADA)."""

    event_id: str = msgspec.field(name="eventoId")


class QueueUpdate(msgspec.Struct, frozen=True):
    """The queue's figures (event room; at most one a second unless its state changes)."""

    event_id: str = msgspec.field(name="eventoId")
    state: str = msgspec.field(name="estado")
    waiting: int = msgspec.field(name="enCola")
    admitted: int = msgspec.field(name="admitidos")


class QueuePositionData(msgspec.Struct, frozen=True):
    event_id: str = msgspec.field(name="eventoId")
    position: int | None = msgspec.field(name="posicion")
    ahead: int | None = msgspec.field(name="delante")
    eta_s: int | None = msgspec.field(name="esperaEstimadaSegundos")
    tickets_left: int = msgspec.field(name="entradasRestantes")


FEED_PAYLOADS: dict[str, type[msgspec.Struct]] = {
    "ticket:stock-update": StockUpdate,
    "ticket:almost-sold-out": AlmostSoldOut,
    "event:update": EventUpdate,
    "order:status-change": OrderStatusChange,
    "waitlist:offer": WaitlistOffer,
    "waitlist:closed": WaitlistClosed,
    "queue:admitted": QueueAdmitted,
    "queue:sold-out": QueueSoldOut,
    "queue:update": QueueUpdate,
}
"""The ``data`` of each feed entry kind, as the Lua scripts (and the engine) store it."""
ROOM_EVENTS = frozenset(
    {"ticket:stock-update", "ticket:almost-sold-out", "event:update", "queue:update"}
)
"""Feed entries for an event's room."""
USER_EVENTS = frozenset(
    {"order:status-change", "waitlist:offer", "waitlist:closed", "queue:admitted"}
)
"""Feed entries for the room of the entry's ``user``."""
QUEUE_EVENTS = frozenset({"queue:sold-out"})
"""Feed entries for every queued buyer of the event whose socket sent ``join:queue``."""


# ``room`` leads on the wire; kw_only lets a defaulted field come first.
class EventRoomJoined(msgspec.Struct, frozen=True, kw_only=True):
    room: Literal["event"] = "event"
    event_id: str = msgspec.field(name="eventId")
    id: str
    """The feed position the client is at: frames after it follow."""
    replayed: int
    snapshot: bool


class UserRoomJoined(msgspec.Struct, frozen=True, kw_only=True):
    room: Literal["user"] = "user"
    user_id: str = msgspec.field(name="userId")


class QueueRoomJoined(msgspec.Struct, frozen=True, kw_only=True):
    room: Literal["queue"] = "queue"
    event_id: str = msgspec.field(name="eventId")


class QueueRoomLeft(msgspec.Struct, frozen=True, kw_only=True):
    room: Literal["queue"] = "queue"
    event_id: str = msgspec.field(name="eventId")


class EventRoomLeft(msgspec.Struct, frozen=True, kw_only=True):
    room: Literal["event"] = "event"
    event_id: str = msgspec.field(name="eventId")


class UserRoomLeft(msgspec.Struct, frozen=True, kw_only=True):
    room: Literal["user"] = "user"
    user_id: str = msgspec.field(name="userId")


class Identity(msgspec.Struct, frozen=True):
    user_id: str = msgspec.field(name="userId")
    role: Role


class Refusal(msgspec.Struct, frozen=True):
    code: str
    message: str


class ServerFrame(msgspec.Struct, frozen=True, tag_field="event", omit_defaults=True):
    """``{"event": <tag>, "data": {...}}`` to a client, ``"id"`` when it has one."""


class StockSnapshot(ServerFrame, frozen=True, tag="ticket:stock-update"):
    """A category's stock as read on join, at feed position ``id``."""

    data: StockUpdate
    id: str


class Joined(ServerFrame, frozen=True, tag="joined"):
    data: EventRoomJoined | UserRoomJoined | QueueRoomJoined


class Left(ServerFrame, frozen=True, tag="left"):
    data: EventRoomLeft | UserRoomLeft | QueueRoomLeft


class QueuePosition(ServerFrame, frozen=True, tag="queue:position"):
    """A queued buyer's place (conflated: at most one a second per buyer)."""

    data: QueuePositionData


class QueueAdmittedFrame(ServerFrame, frozen=True, tag="queue:admitted"):
    data: QueueAdmitted


class QueueSoldOutFrame(ServerFrame, frozen=True, tag="queue:sold-out"):
    data: QueueSoldOut


class Authenticated(ServerFrame, frozen=True, tag="authenticated"):
    data: Identity


class Error(ServerFrame, frozen=True, tag="error"):
    data: Refusal


class FeedFrame(msgspec.Struct, frozen=True):
    """A feed entry's frame: its kind, the stored JSON embedded as-is, its stream id."""

    event: str
    data: msgspec.Raw
    id: str


class WireFrame(msgspec.Struct, frozen=True):
    """Any server frame, decoded generically (the Socket.IO gateway re-frames them)."""

    event: str
    data: Any = None
    id: str | None = None


_encode = msgspec.json.Encoder().encode
decode_frame = msgspec.json.Decoder(WireFrame).decode


def encode(frame: ServerFrame) -> bytes:
    """A server frame's bytes."""
    return _encode(frame)


def feed_frame(name: str, data: bytes, entry_id: str) -> bytes:
    """The frame of one feed entry, made once and shared by every receiver."""
    return _encode(FeedFrame(event=name, data=msgspec.Raw(data), id=entry_id))
