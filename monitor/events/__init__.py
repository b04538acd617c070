"""fqm's events: typed records of what was seen, their JSON Schemas, and their wire format.

Pure data and serialization (no torch, MediaPipe or Kafka): producers build the frozen
dataclasses of :mod:`~monitor.events.model` and turn them into
:class:`~monitor.delivery.record.Record` s with :func:`to_records`; consumers turn records
back into events with :func:`parse` and keep the best faces with :class:`BestFaces`. The
format, topics and versioning are documented in docs/events.md.
"""

from monitor.events.codec import (
    DEFAULT_TOPICS,
    InlineCrop,
    NotAnEventError,
    SchemaVersionError,
    Topics,
    UnknownKindError,
    crop_record,
    dumps,
    from_dict,
    loads,
    parse,
    parse_crop,
    to_dict,
    to_record,
    to_records,
)
from monitor.events.consumer import BestFace, BestFaces, Deduplicator
from monitor.events.crops import (
    CropPolicy,
    CropStore,
    CropTooLargeError,
    EncodedCrop,
    LocalCropStore,
    attach_crop,
    encode_crop,
)
from monitor.events.limits import MAX_CROP_BYTES, MAX_RECORD_BYTES, RecordTooLargeError
from monitor.events.model import (
    SCHEMA_VERSION,
    BestFrame,
    BestFrameEvent,
    CropRef,
    CurvePoint,
    Event,
    EventError,
    FaceObservationEvent,
    FaceSignals,
    QualityCurve,
    QualityScore,
    StreamStatusEvent,
    TrackSummaryEvent,
    default_producer,
    utc_from_unix,
    utc_now,
)

__all__ = [
    "DEFAULT_TOPICS",
    "MAX_CROP_BYTES",
    "MAX_RECORD_BYTES",
    "SCHEMA_VERSION",
    "BestFace",
    "BestFaces",
    "BestFrame",
    "BestFrameEvent",
    "CropPolicy",
    "CropRef",
    "CropStore",
    "CropTooLargeError",
    "CurvePoint",
    "Deduplicator",
    "EncodedCrop",
    "Event",
    "EventError",
    "FaceObservationEvent",
    "FaceSignals",
    "InlineCrop",
    "LocalCropStore",
    "NotAnEventError",
    "QualityCurve",
    "QualityScore",
    "RecordTooLargeError",
    "SchemaVersionError",
    "StreamStatusEvent",
    "Topics",
    "TrackSummaryEvent",
    "UnknownKindError",
    "attach_crop",
    "crop_record",
    "default_producer",
    "dumps",
    "encode_crop",
    "from_dict",
    "loads",
    "parse",
    "parse_crop",
    "to_dict",
    "to_record",
    "to_records",
    "utc_from_unix",
    "utc_now",
]
