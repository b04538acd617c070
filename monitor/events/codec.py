"""Events to records and back: JSON bodies, topics, keys, headers, and the version check.

An event becomes one :class:`~monitor.delivery.record.Record` on its kind's topic, keyed by
the stream id (UTF-8), so one stream's events stay in order in one partition. The value is
compact UTF-8 JSON following ``schemas/v1/<kind>.json``; headers repeat what a router needs
without parsing the body. A best-frame event with an inline crop also has a binary record
on the crops topic (published first, same key).

Headers of an event record: ``content-type: application/json``, ``schema-version``,
``kind``, ``event-id``. Of a crop record: ``content-type: image/jpeg``, ``schema-version``,
``kind: crop``, ``crop-id``.

Example:
    >>> from monitor.events import StreamStatusEvent, parse, to_record
    >>> event = StreamStatusEvent(stream_id="cam-1", producer="host-a:1", state="up", fps=25.0)
    >>> record = to_record(event)
    >>> record.topic, record.key
    ('fqm.status', b'cam-1')
    >>> parse(record) == event
    True
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, fields, is_dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal, Protocol, Union, get_args, get_origin, get_type_hints
from uuid import UUID

from monitor.delivery.record import Record
from monitor.events.crops import EncodedCrop
from monitor.events.limits import MAX_RECORD_BYTES, RecordTooLargeError
from monitor.events.model import (
    EVENT_TYPES,
    SCHEMA_MAJOR,
    SCHEMA_MINOR,
    SCHEMA_VERSION,
    BestFrameEvent,
    CropRef,
    Event,
    EventError,
)

JSON_CONTENT_TYPE = "application/json"
JPEG_CONTENT_TYPE = "image/jpeg"
HEADER_CONTENT_TYPE = "content-type"
HEADER_SCHEMA_VERSION = "schema-version"
HEADER_KIND = "kind"
HEADER_EVENT_ID = "event-id"
HEADER_CROP_ID = "crop-id"
#: The ``kind`` header of crop records (they are not events and have no JSON body).
CROP_KIND = "crop"

# Kafka's legal topic names.
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_VERSION = re.compile(r"^([0-9]+)\.([0-9]+)$")

#: Fields added by a later minor version, as ``{(class name, field): minor}``: events of
#: earlier minors may lack them (the dataclass gives them a default). None yet in 1.x.
ADDED_IN_MINOR: dict[tuple[str, str], int] = {}


class SchemaVersionError(EventError):
    """An event whose ``schema_version`` this fqm cannot read."""


class UnknownKindError(EventError):
    """An event whose ``kind`` is not one of this schema's kinds."""


class NotAnEventError(EventError):
    """A record that is not a JSON event (a crop record, or foreign data)."""


@dataclass(frozen=True)
class Topics:
    """The topic of each kind, and of inline crops. Names follow Kafka's rules.

    Example:
        >>> Topics().for_kind("best_frame")
        'fqm.best'
        >>> Topics.prefixed("site-a").faces
        'site-a.faces'
    """

    faces: str = "fqm.faces"
    best: str = "fqm.best"
    tracks: str = "fqm.tracks"
    status: str = "fqm.status"
    crops: str = "fqm.crops"

    def __post_init__(self) -> None:
        names = [getattr(self, f.name) for f in fields(self)]
        for f, name in zip(fields(self), names, strict=True):
            if not isinstance(name, str) or not _TOPIC.match(name) or name in (".", ".."):
                raise ValueError(
                    f"Topics.{f.name}={name!r}: a Kafka topic name is 1-249 of [A-Za-z0-9._-]"
                )
        if len(set(names)) != len(names):
            raise ValueError(f"Topics: every kind needs its own topic; got {names}")

    @classmethod
    def prefixed(cls, prefix: str) -> Topics:
        """``<prefix>.faces``, ``<prefix>.best``, ...: one set of topics per deployment."""
        return cls(*(f"{prefix}.{f.name}" for f in fields(cls)))

    def for_kind(self, kind: str) -> str:
        """The topic of events of ``kind``."""
        try:
            return getattr(self, _TOPIC_OF_KIND[kind])
        except KeyError:
            raise UnknownKindError(f"no topic for kind {kind!r}") from None


_TOPIC_OF_KIND = {
    "face_observation": "faces",
    "best_frame": "best",
    "track_summary": "tracks",
    "stream_status": "status",
}
DEFAULT_TOPICS = Topics()


# ---- JSON ----------------------------------------------------------------------------------


def format_time(value: datetime) -> str:
    """RFC 3339 UTC to the microsecond: ``2024-05-01T12:00:00.250000Z``."""
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _encode(value: Any) -> Any:
    if is_dataclass(value):
        return {f.name: _encode(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    return value


def to_dict(event: Event) -> dict[str, Any]:
    """The event as a JSON-ready dict, envelope first (what the schemas describe)."""
    body = _encode(event)
    head = ("schema_version", "kind", "event_id", "stream_id", "producer", "wall_time")
    out = {name: body.pop(name) for name in head if name != "kind"}
    out = {"schema_version": out.pop("schema_version"), "kind": event.kind, **out}
    return {**out, **body}


def dumps(event: Event) -> bytes:
    """Compact UTF-8 JSON of the event."""
    return json.dumps(
        to_dict(event), ensure_ascii=False, allow_nan=False, separators=(",", ":")
    ).encode()


def check_version(version: object) -> int:
    """The minor version of a readable ``schema_version``; raises if this fqm cannot read it.

    Readable: the same major version. A newer minor only adds fields, which are ignored.
    """
    match = _VERSION.match(version) if isinstance(version, str) else None
    if match is None:
        raise SchemaVersionError(
            f"schema_version {version!r} is not 'MAJOR.MINOR'; this is not an fqm event"
        )
    major, minor = int(match[1]), int(match[2])
    if major > SCHEMA_MAJOR:
        raise SchemaVersionError(
            f"event schema {version} is newer than this consumer reads ({SCHEMA_MAJOR}.x, "
            f"up to {SCHEMA_VERSION}); upgrade fqm where the events are consumed"
        )
    if major < SCHEMA_MAJOR:
        raise SchemaVersionError(
            f"event schema {version} is older than this consumer reads ({SCHEMA_MAJOR}.x); "
            "read it with an fqm release of that major version"
        )
    return minor


class _Decoder:
    """Builds dataclasses from JSON values by their type hints; ``strict``: no unknown keys."""

    def __init__(self, minor: int) -> None:
        self.minor = minor
        self.strict = minor <= SCHEMA_MINOR

    def value(self, tp: Any, value: Any, path: str) -> Any:
        origin = get_origin(tp)
        if origin in (Union, types.UnionType):
            options = [a for a in get_args(tp) if a is not type(None)]
            if value is None and len(options) < len(get_args(tp)):
                return None
            return self.value(options[0], value, path)
        if origin is Literal:
            if value not in get_args(tp):
                choices = ", ".join(repr(a) for a in get_args(tp))
                raise EventError(f"{path}: {value!r} is not one of {choices}")
            return value
        if origin is tuple:
            args = get_args(tp)
            if not isinstance(value, list):
                raise EventError(f"{path}: expected an array, got {_json_type(value)}")
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(self.value(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
            if len(value) != len(args):
                raise EventError(f"{path}: expected {len(args)} items, got {len(value)}")
            return tuple(
                self.value(a, v, f"{path}[{i}]")
                for i, (a, v) in enumerate(zip(args, value, strict=True))
            )
        if is_dataclass(tp):
            return self.object(tp, value, path)
        if tp is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise EventError(f"{path}: expected a number, got {_json_type(value)}")
            return float(value)
        if tp is int:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise EventError(f"{path}: expected an integer, got {_json_type(value)}")
            return value
        if tp is str:
            if not isinstance(value, str):
                raise EventError(f"{path}: expected a string, got {_json_type(value)}")
            return value
        if tp is datetime:
            try:
                parsed = datetime.fromisoformat(value)
            except (TypeError, ValueError):
                parsed = None
            if parsed is None or parsed.utcoffset() is None:
                raise EventError(f"{path}: {value!r} is not an RFC 3339 time with a zone")
            return parsed
        if tp is UUID:
            try:
                return UUID(value)
            except (TypeError, ValueError, AttributeError):
                raise EventError(f"{path}: {value!r} is not a UUID") from None
        raise TypeError(f"no decoder for {tp!r}")  # a model change without a codec change

    def object(self, cls: type, value: Any, path: str, skip: frozenset = frozenset()) -> Any:
        if not isinstance(value, dict):
            raise EventError(f"{path}: expected an object, got {_json_type(value)}")
        hints = _hints(cls)
        known = {f.name: f for f in fields(cls) if f.init}
        unknown = sorted(set(value) - set(known) - skip)
        if unknown and self.strict:
            raise EventError(f"{path}: unexpected field(s) {', '.join(unknown)}")
        kwargs = {}
        for name, f in known.items():
            if name in value:
                kwargs[name] = self.value(hints[name], value[name], f"{path}.{name}")
                continue
            added = ADDED_IN_MINOR.get((cls.__name__, name))
            optional = added is not None and added > self.minor
            if not optional or (f.default is MISSING and f.default_factory is MISSING):
                raise EventError(f"{path}: missing field {name}")
        try:
            return cls(**kwargs)
        except EventError as exc:
            raise EventError(f"{path}: {exc}") from None


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _json_type(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def from_dict(obj: Mapping[str, Any]) -> Event:
    """The event a JSON object describes; checks version, kind, every field and type.

    Raises:
        SchemaVersionError: another major version (or no version).
        UnknownKindError: a kind this version does not have.
        EventError: a missing, unexpected or malformed field.
    """
    if not isinstance(obj, Mapping):
        raise EventError(f"an event is a JSON object, got {_json_type(obj)}")
    minor = check_version(obj.get("schema_version"))
    kind = obj.get("kind")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise UnknownKindError(
            f"unknown event kind {kind!r}; schema {SCHEMA_MAJOR}.x has {', '.join(EVENT_TYPES)}"
        )
    return _Decoder(minor).object(cls, dict(obj), kind, skip=frozenset({"kind"}))


def loads(value: bytes | str) -> Event:
    """The event in a JSON body."""
    try:
        obj = json.loads(value)
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotAnEventError(f"the value is not JSON: {exc}") from None
    return from_dict(obj)


# ---- records -------------------------------------------------------------------------------


def _checked(record: Record, max_bytes: int, what: str) -> Record:
    if record.size > max_bytes:
        raise RecordTooLargeError(
            f"{what} is {record.size} bytes, over the {max_bytes}-byte record limit "
            "(Kafka's default is about 1 MB); this is a bug in the event's producer"
        )
    return record


def to_record(
    event: Event, topics: Topics = DEFAULT_TOPICS, max_bytes: int = MAX_RECORD_BYTES
) -> Record:
    """The event's record: its kind's topic, the stream id as key, JSON value, headers.

    Raises:
        RecordTooLargeError: over ``max_bytes`` (not expected: every field is bounded).
    """
    record = Record(
        topic=topics.for_kind(event.kind),
        key=event.stream_id.encode(),
        value=dumps(event),
        headers=(
            (HEADER_CONTENT_TYPE, JSON_CONTENT_TYPE.encode()),
            (HEADER_SCHEMA_VERSION, event.schema_version.encode()),
            (HEADER_KIND, event.kind.encode()),
            (HEADER_EVENT_ID, str(event.event_id).encode()),
        ),
    )
    return _checked(record, max_bytes, f"the {event.kind} event {event.event_id}")


def crop_record(
    ref: CropRef,
    crop: EncodedCrop,
    stream_id: str,
    topics: Topics = DEFAULT_TOPICS,
    max_bytes: int = MAX_RECORD_BYTES,
) -> Record:
    """The inline record of a crop: the JPEG on the crops topic, keyed by ``stream_id``."""
    if ref.delivery != "inline":
        raise ValueError(f"crop {ref.crop_id} is claim-checked ({ref.uri}); it has no record")
    if ref.sha256 != crop.sha256 or ref.size_bytes != crop.size:
        raise ValueError(f"crop {ref.crop_id}: the JPEG given is not the one the ref describes")
    record = Record(
        topic=topics.crops,
        key=stream_id.encode(),
        value=crop.jpeg,
        headers=(
            (HEADER_CONTENT_TYPE, JPEG_CONTENT_TYPE.encode()),
            (HEADER_SCHEMA_VERSION, SCHEMA_VERSION.encode()),
            (HEADER_KIND, CROP_KIND.encode()),
            (HEADER_CROP_ID, str(ref.crop_id).encode()),
        ),
    )
    return _checked(record, max_bytes, f"crop {ref.crop_id}")


def to_records(
    event: Event,
    topics: Topics = DEFAULT_TOPICS,
    crop: EncodedCrop | None = None,
    max_bytes: int = MAX_RECORD_BYTES,
) -> tuple[Record, ...]:
    """Everything to publish for ``event``, in order.

    A best-frame event with an inline crop needs ``crop`` (the JPEG its ``CropRef``
    describes) and gives ``(crop record, event record)``: the crop goes first, so a consumer
    usually has it when the event arrives (different topics: it must still cope otherwise).
    Any other event gives its one record, and ``crop`` must be ``None``.
    """
    inline = isinstance(event, BestFrameEvent) and event.crop.delivery == "inline"
    if inline and crop is None:
        raise ValueError("a best-frame event with an inline crop needs crop= (its JPEG)")
    if not inline and crop is not None:
        raise ValueError(f"crop= is only for best-frame events with inline crops, not {event}")
    record = to_record(event, topics, max_bytes)
    if inline:
        assert isinstance(event, BestFrameEvent)
        assert crop is not None
        return crop_record(event.crop, crop, event.stream_id, topics, max_bytes), record
    return (record,)


# ---- parsing (consumer side) ---------------------------------------------------------------


class RecordLike(Protocol):
    """Anything with a record's parts: ``Record``, kafka-python's ``ConsumerRecord``, ..."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Iterable[tuple[str, bytes]]


Message = Record | RecordLike | tuple[str, bytes | None, bytes, Iterable[tuple[str, bytes]]]


@dataclass(frozen=True)
class InlineCrop:
    """A crop record, read: the JPEG of ``crop_id`` for ``stream_id``."""

    crop_id: UUID
    stream_id: str
    jpeg: bytes


def _parts(message: Message) -> tuple[str, bytes | None, bytes, dict[str, bytes]]:
    # A plain 4-tuple; a ConsumerRecord is a namedtuple too, but of 13 fields: read by name.
    if isinstance(message, tuple) and not hasattr(message, "_fields"):
        topic, key, value, headers = message
    else:
        topic, key, value, headers = message.topic, message.key, message.value, message.headers
    if not isinstance(value, bytes | bytearray | memoryview):
        raise NotAnEventError(f"a record's value is bytes, got {type(value).__name__}")
    return topic, key, bytes(value), {k: bytes(v) for k, v in headers or ()}


def parse(message: Message) -> Event:
    """The event in a record (``Record``, a Kafka ``ConsumerRecord``, or a
    ``(topic, key, value, headers)`` tuple), fully checked.

    The JSON body is the truth; headers and key, where present, must agree with it.

    Raises:
        SchemaVersionError: an event of another major version ("upgrade fqm ...").
        UnknownKindError: a kind this version does not have.
        NotAnEventError: a crop record (use :func:`parse_crop`) or a non-JSON value.
        EventError: a missing, unexpected or malformed field; a key or header that disagrees.
    """
    topic, key, value, headers = _parts(message)
    content_type = headers.get(HEADER_CONTENT_TYPE, JSON_CONTENT_TYPE.encode()).decode("latin-1")
    if content_type == JPEG_CONTENT_TYPE:
        raise NotAnEventError(f"a crop record on {topic}; read it with parse_crop")
    if content_type != JSON_CONTENT_TYPE:
        raise NotAnEventError(f"content-type {content_type!r} on {topic} is not an fqm event")
    event = loads(value)
    header_version = headers.get(HEADER_SCHEMA_VERSION)
    if header_version is not None and header_version != event.schema_version.encode():
        raise EventError(
            f"schema-version header {header_version!r} differs from the body's "
            f"{event.schema_version!r}"
        )
    expected = {
        HEADER_KIND: event.kind.encode(),
        HEADER_EVENT_ID: str(event.event_id).encode(),
    }
    for name, want in expected.items():
        if name in headers and headers[name] != want:
            raise EventError(f"{name} header {headers[name]!r} differs from the body's {want!r}")
    if key is not None and key != event.stream_id.encode():
        raise EventError(f"record key {key!r} is not the event's stream id {event.stream_id!r}")
    return event


def parse_crop(message: Message) -> InlineCrop:
    """The JPEG in an inline crop record (from the crops topic)."""
    topic, key, value, headers = _parts(message)
    if headers.get(HEADER_CONTENT_TYPE) != JPEG_CONTENT_TYPE.encode():
        raise NotAnEventError(f"the record on {topic} is not a crop (content-type image/jpeg)")
    check_version(headers.get(HEADER_SCHEMA_VERSION, b"").decode("latin-1"))
    try:
        crop_id = UUID(headers[HEADER_CROP_ID].decode("ascii"))
    except (KeyError, ValueError, UnicodeDecodeError):
        raise EventError(f"the crop record on {topic} has no valid crop-id header") from None
    if key is None:
        raise EventError(f"the crop record {crop_id} on {topic} has no key (its stream id)")
    return InlineCrop(crop_id, key.decode(), value)
