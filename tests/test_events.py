"""The event model: round trips, JSON Schemas, versioning, crop sizes, consumer helpers."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import json
import re
import sys
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import numpy as np
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from kafka.consumer.fetcher import ConsumerRecord
from PIL import Image
from referencing import Registry, Resource

from engines.dataset import read_image_rgb
from monitor.assets import asset_path
from monitor.events import (
    MAX_CROP_BYTES,
    MAX_RECORD_BYTES,
    SCHEMA_VERSION,
    BestFaces,
    BestFrameEvent,
    CropPolicy,
    CropTooLargeError,
    CurvePoint,
    Deduplicator,
    EventError,
    FaceObservationEvent,
    FaceSignals,
    LocalCropStore,
    NotAnEventError,
    QualityCurve,
    RecordTooLargeError,
    SchemaVersionError,
    StreamStatusEvent,
    Topics,
    TrackSummaryEvent,
    UnknownKindError,
    attach_crop,
    encode_crop,
    from_dict,
    parse,
    parse_crop,
    schemas,
    to_dict,
    to_record,
    to_records,
)
from monitor.events.examples import examples, update_markdown
from monitor.events.limits import KAFKA_DEFAULT_MAX_BYTES
from monitor.events.model import EVENT_TYPES, MAX_CURVE_POINTS
from tests.test_architecture import imports

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "events.md"


def _format_checker() -> FormatChecker:
    checker = FormatChecker()

    # jsonschema checks date-time only with the optional rfc3339-validator package; this
    # check (Python's RFC 3339 parser, plus a zone) keeps the tests strict without it.
    @checker.checks("date-time", raises=ValueError)
    def date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        return datetime.fromisoformat(value).utcoffset() is not None

    return checker


@pytest.fixture(scope="module")
def validators() -> dict[str, Draft202012Validator]:
    docs = schemas.load_all()
    for doc in docs.values():
        Draft202012Validator.check_schema(doc)
    registry = Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc)) for doc in docs.values()
    )
    return {
        kind: Draft202012Validator(docs[kind], registry=registry, format_checker=_format_checker())
        for kind in schemas.KINDS
    }


def _errors(validator: Draft202012Validator, instance: Any) -> list[str]:
    """Every error message, including those inside ``anyOf`` branches."""

    def flat(errors: Any) -> list[str]:
        return [m for e in errors for m in (e.message, *flat(e.context))]

    return flat(validator.iter_errors(instance))


# ---- round trips and schemas ---------------------------------------------------------------


@pytest.mark.parametrize("kind", list(EVENT_TYPES))
def test_every_kind_round_trips_and_validates(kind: str, validators) -> None:
    event = examples()[kind]
    assert event.kind == kind
    record = to_record(event)
    assert record.topic == Topics().for_kind(kind)
    assert record.key == b"lobby-cam-1"
    assert dict(record.headers) == {
        "content-type": b"application/json",
        "schema-version": SCHEMA_VERSION.encode(),
        "kind": kind.encode(),
        "event-id": str(event.event_id).encode(),
    }
    assert parse(record) == event
    assert parse((record.topic, record.key, record.value, list(record.headers))) == event
    # What kafka-python's consumer yields: a namedtuple of 13 fields, read by name.
    consumed = ConsumerRecord(
        record.topic, 0, -1, 7, 0, 0, record.key, record.value, list(record.headers),
        None, len(record.key), len(record.value), -1,
    )  # fmt: skip
    assert parse(consumed) == event
    assert _errors(validators[kind], json.loads(record.value)) == []


def test_kind_schemas_list_exactly_the_dataclass_fields() -> None:
    for kind, cls in EVENT_TYPES.items():
        doc = schemas.load(kind)
        names = {f.name for f in dataclasses.fields(cls)} | {"kind"}
        assert set(doc["properties"]) == names, kind
        assert set(doc["required"]) == names, kind
        assert doc["additionalProperties"] is False
        assert doc["properties"]["kind"] == {"const": kind}
    crop = schemas.load("defs")["$defs"]["crop_ref"]
    assert crop["properties"]["size_bytes"]["maximum"] == MAX_CROP_BYTES


def test_fresh_events_get_ids_times_and_validate(validators) -> None:
    a = StreamStatusEvent(stream_id="cam-ü", producer="host:1", state="up", fps=24.5)
    b = StreamStatusEvent(stream_id="cam-ü", producer="host:1", state="up", fps=24.5)
    assert a.event_id != b.event_id
    assert a.wall_time.tzinfo is UTC
    assert _errors(validators["stream_status"], to_dict(a)) == []
    assert parse(to_record(a)) == a
    assert to_record(a).key == "cam-ü".encode()


def test_wall_times_in_other_zones_are_kept_as_utc() -> None:
    local = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC).astimezone(
        __import__("datetime").timezone(timedelta(hours=5, minutes=30))
    )
    event = StreamStatusEvent(stream_id="s", producer="p", state="down", wall_time=local)
    assert event.wall_time.tzinfo is UTC
    assert event.wall_time == local
    assert to_dict(event)["wall_time"] == "2025-01-02T03:04:05.678901Z"


def test_docs_examples_are_generated_valid_and_parse(validators) -> None:
    text = DOC.read_text()
    assert update_markdown(text) == text, (
        "docs/events.md examples are stale: run .venv/bin/python -m monitor.events.examples "
        "docs/events.md"
    )
    blocks = re.findall(r"<!-- example: (\w+) -->\n```json\n(.*?)```", text, re.S)
    assert sorted(kind for kind, _ in blocks) == sorted(EVENT_TYPES)
    for kind, body in blocks:
        obj = json.loads(body)
        assert _errors(validators[kind], obj) == [], kind
        assert from_dict(obj) == examples()[kind]


def _example_json(kind: str) -> dict[str, Any]:
    return to_dict(examples()[kind])


@pytest.mark.parametrize(
    ("kind", "mutate", "problem"),
    [
        ("face_observation", lambda o: o.pop("track_id"), "missing"),
        ("best_frame", lambda o: o["crop"].pop("sha256"), "missing"),
        ("track_summary", lambda o: o.update(colour="red"), "unexpected"),
        ("face_observation", lambda o: o["quality"].update(extra=1), "unexpected"),
        ("stream_status", lambda o: o.update(frames_dropped="12"), "type"),
        ("face_observation", lambda o: o.update(detection_score=True), "type"),
        ("best_frame", lambda o: o.update(bbox=[1.0, 2.0, 3.0]), "type"),
        ("stream_status", lambda o: o.update(state="sleeping"), "value"),
        ("track_summary", lambda o: o.update(event_id="not-a-uuid"), "value"),
        ("track_summary", lambda o: o.update(wall_time="yesterday"), "value"),
        ("best_frame", lambda o: o["crop"].update(uri="file:///x.jpg"), "value"),
        ("face_observation", lambda o: o["quality"].update(variant="DSL FIQA"), "value"),
    ],
)
def test_invalid_events_are_rejected_by_schema_and_parser(
    kind: str, mutate, problem: str, validators
) -> None:
    obj = _example_json(kind)
    mutate(obj)
    assert _errors(validators[kind], obj) != [], problem
    with pytest.raises(EventError):
        from_dict(obj)


def test_an_overlong_curve_is_rejected(validators) -> None:
    obj = _example_json("track_summary")
    point = obj["curve"]["points"][0]
    obj["curve"]["points"] = [dict(point, frame_index=i) for i in range(MAX_CURVE_POINTS + 1)]
    obj["curve"]["count"] = obj["observations_scored"] = MAX_CURVE_POINTS + 1
    obj["frames_seen"] = 100
    assert any(e.endswith("is too long") for e in _errors(validators["track_summary"], obj))
    with pytest.raises(EventError, match="points"):
        from_dict(obj)


def test_construction_checks_fields() -> None:
    good = examples()["face_observation"]
    with pytest.raises(EventError, match=r"bbox.*x2 < x1"):
        dataclasses.replace(good, bbox=(10.0, 0.0, 5.0, 1.0))
    with pytest.raises(EventError, match="detection_score"):
        dataclasses.replace(good, detection_score=1.5)
    with pytest.raises(EventError, match="aware datetime"):
        dataclasses.replace(good, wall_time=datetime(2025, 1, 1))
    with pytest.raises(EventError, match="stream_id"):
        dataclasses.replace(good, stream_id="")
    with pytest.raises(EventError, match="not finite"):
        dataclasses.replace(good, pts=float("nan"))
    summary = examples()["track_summary"]
    with pytest.raises(EventError, match="observations_scored"):
        dataclasses.replace(summary, best=None)


# ---- versions and kinds --------------------------------------------------------------------


def test_a_newer_major_version_is_refused_with_a_clear_message() -> None:
    record = to_record(examples()["face_observation"])
    obj = json.loads(record.value)
    obj["schema_version"] = "2.0"
    newer = (record.topic, record.key, json.dumps(obj).encode(), [])
    with pytest.raises(SchemaVersionError, match=r"2\.0 is newer .* upgrade fqm"):
        parse(newer)
    obj["schema_version"] = "0.9"
    with pytest.raises(SchemaVersionError, match="older"):
        from_dict(obj)
    obj["schema_version"] = 1
    with pytest.raises(SchemaVersionError, match=r"MAJOR\.MINOR"):
        from_dict(obj)


def test_a_newer_minor_version_is_read_and_its_new_fields_ignored(validators) -> None:
    event = examples()["best_frame"]
    obj = to_dict(event)
    obj["schema_version"] = "1.7"
    obj["new_field"] = {"anything": 1}
    obj["crop"]["new_nested"] = "x"
    parsed = from_dict(obj)
    assert parsed == dataclasses.replace(event, schema_version="1.7")
    # ...but a same-minor event with unknown fields is malformed.
    obj["schema_version"] = SCHEMA_VERSION
    with pytest.raises(EventError, match="unexpected field"):
        from_dict(obj)


def test_unknown_kinds_and_foreign_records_are_refused() -> None:
    obj = _example_json("stream_status")
    obj["kind"] = "stream_party"
    with pytest.raises(UnknownKindError, match="stream_party"):
        from_dict(obj)
    with pytest.raises(NotAnEventError, match="not JSON"):
        parse(("fqm.faces", b"cam", b"\xff\xd8 not json", []))
    with pytest.raises(EventError, match="JSON object"):
        parse(("fqm.faces", b"cam", b"[1, 2]", []))


def test_keys_and_headers_must_agree_with_the_body() -> None:
    record = to_record(examples()["stream_status"])
    with pytest.raises(EventError, match="record key"):
        parse((record.topic, b"other-cam", record.value, record.headers))
    headers = [(k, b"face_observation" if k == "kind" else v) for k, v in record.headers]
    with pytest.raises(EventError, match="kind header"):
        parse((record.topic, record.key, record.value, headers))
    assert parse((record.topic, None, record.value, [])) == examples()["stream_status"]


def test_topics_are_configurable_and_checked() -> None:
    topics = Topics.prefixed("site-a")
    assert (topics.faces, topics.crops) == ("site-a.faces", "site-a.crops")
    event = examples()["track_summary"]
    assert to_record(event, topics).topic == "site-a.tracks"
    with pytest.raises(ValueError, match="own topic"):
        Topics(faces="x", best="x")
    with pytest.raises(ValueError, match="Kafka topic name"):
        Topics(status="fqm status")


# ---- crops and sizes -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    image = read_image_rgb(asset_path("grace_hopper_512x512.jpg"))
    assert image.shape == (512, 512, 3)
    return image


def _noise(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (512, 512, 3), dtype=np.uint8)


def test_a_real_face_fits_at_max_quality(face: np.ndarray) -> None:
    before = face.copy()
    default = encode_crop(face)
    best = encode_crop(face, CropPolicy(quality=100))
    assert np.array_equal(face, before)
    assert (default.quality, default.width, default.subsampling) == (90, 512, "4:4:4")
    assert (best.quality, best.width, best.height) == (100, 512, 512)
    assert default.size < 150_000
    assert best.size < 400_000
    decoded = np.asarray(Image.open(io.BytesIO(best.jpeg)).convert("RGB"))
    assert np.abs(decoded.astype(int) - face).mean() < 2


def test_noise_fits_by_lowering_quality_and_records_stay_under_kafkas_limit() -> None:
    crop = encode_crop(_noise(), CropPolicy(quality=100))
    # 4:4:4 noise at quality 100 is ~1.08 MB; the next step down fits.
    assert crop.quality < 100
    assert crop.size <= MAX_CROP_BYTES
    assert (crop.width, crop.height) == (512, 512)
    ref = attach_crop(crop)
    event = dataclasses.replace(examples()["best_frame"], crop=ref)
    crop_rec, event_rec = to_records(event, crop=crop)
    assert crop_rec.size <= MAX_RECORD_BYTES < KAFKA_DEFAULT_MAX_BYTES
    assert event_rec.size < 4096
    assert crop_rec.topic == "fqm.crops"
    assert crop_rec.key == event_rec.key
    inline = parse_crop(crop_rec)
    assert inline.crop_id == ref.crop_id
    assert inline.jpeg == crop.jpeg
    assert hashlib.sha256(inline.jpeg).hexdigest() == parse(event_rec).crop.sha256
    with pytest.raises(NotAnEventError, match="parse_crop"):
        parse(crop_rec)


def test_small_limits_downscale_then_fail_loudly() -> None:
    noise = _noise(1)
    small = encode_crop(noise, CropPolicy(max_bytes=60_000))
    assert small.size <= 60_000
    assert small.width < 512
    assert small.subsampling == "4:2:0"
    assert small.quality == CropPolicy().min_quality
    with pytest.raises(CropTooLargeError, match=r"does not fit 5000 bytes .*claim-check"):
        encode_crop(noise, CropPolicy(max_bytes=5000))


def test_crop_policy_and_input_are_checked() -> None:
    with pytest.raises(ValueError, match="min_quality"):
        CropPolicy(quality=40, min_quality=50)
    with pytest.raises(ValueError, match="1 MB"):
        CropPolicy(max_bytes=MAX_RECORD_BYTES)
    with pytest.raises(ValueError, match=r"uint8 \[H, W, 3\]"):
        encode_crop(np.zeros((512, 512), np.uint8))


def test_oversized_records_raise() -> None:
    event = examples()["face_observation"]
    with pytest.raises(RecordTooLargeError, match="over the 100-byte record limit"):
        to_record(event, max_bytes=100)


def test_claim_check_crops_are_stored_and_referenced(
    face: np.ndarray, tmp_path: Path, validators
) -> None:
    crop = encode_crop(face)
    store = LocalCropStore(tmp_path / "crops")
    ref = attach_crop(crop, store)
    assert ref.delivery == "claim_check"
    assert ref.uri.startswith("file://")
    stored = store.path(str(ref.crop_id))
    assert stored.read_bytes() == crop.jpeg
    assert ref.uri == stored.as_uri()
    assert [p.name for p in stored.parent.iterdir()] == [stored.name]  # no temp files left
    event = dataclasses.replace(examples()["best_frame"], crop=ref)
    (record,) = to_records(event)
    assert parse(record) == event
    assert _errors(validators["best_frame"], json.loads(record.value)) == []
    with pytest.raises(ValueError, match="crop= is only"):
        to_records(event, crop=crop)
    with pytest.raises(ValueError, match="file-name-safe"):
        store.put("../escape", b"x")


def test_inline_best_frame_needs_its_jpeg(face: np.ndarray) -> None:
    event = examples()["best_frame"]
    with pytest.raises(ValueError, match="needs crop="):
        to_records(event)
    with pytest.raises(ValueError, match="not the one"):
        to_records(event, crop=encode_crop(face))


# ---- curves --------------------------------------------------------------------------------


def test_quality_curve_is_bounded_and_keeps_first_last_and_best() -> None:
    rng = np.random.default_rng(3)
    scores = rng.random(1000).tolist()
    points = [CurvePoint(frame_index=i, pts=i / 25, score=s) for i, s in enumerate(scores)]
    curve = QualityCurve.from_points(reversed(points))
    assert curve.count == 1000
    assert len(curve.points) == MAX_CURVE_POINTS
    frames = [p.frame_index for p in curve.points]
    assert frames == sorted(frames)
    assert frames[0] == 0
    assert frames[-1] == 999
    assert max(p.score for p in curve.points) == curve.max == max(scores)
    assert curve.min == min(scores)
    assert curve.median == pytest.approx(np.median(scores))
    few = QualityCurve.from_points(points[:3])
    assert few.points == tuple(points[:3])


def test_signals_come_from_the_quality_signals() -> None:
    from monitor.faces.quality import QualitySignals

    q = QualitySignals(100, 60, 1, 2, 3, 400, 120, 40)
    assert FaceSignals.from_quality_signals(q) == FaceSignals(
        face_size=100.0, interocular=60.0, yaw=1.0, pitch=2.0, roll=3.0,
        sharpness=400.0, brightness=120.0, contrast=40.0,
    )  # fmt: skip


# ---- consumer side -------------------------------------------------------------------------


def test_dedup_drops_duplicates_and_stays_bounded() -> None:
    d = Deduplicator(capacity=1000)
    ids = [uuid4() for _ in range(5000)]
    assert [d.seen(i) for i in ids[:10]] == [False] * 10
    assert [d.seen(i) for i in ids[:10]] == [True] * 10
    for i in ids[10:]:
        d.seen(i)
    assert len(d) == 1000
    assert d.duplicates == 10
    assert ids[-1] in d
    assert ids[0] not in d
    tracemalloc.start()
    try:
        for _ in range(2000):  # every remembered id now allocated under tracing
            d.seen(uuid4())
        base = tracemalloc.take_snapshot()
        for _ in range(20_000):
            d.seen(uuid4())
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(base, "filename"))
    assert len(d) == 1000
    assert grown < 20_000


def _best(track: int, frame: int, score: float, **kw: Any) -> BestFrameEvent:
    base = examples()["best_frame"]
    quality = dataclasses.replace(base.quality, score=score)
    return dataclasses.replace(
        base, event_id=uuid4(), track_id=track, frame_index=frame, quality=quality, **kw
    )


def test_best_faces_follow_updates_summaries_and_duplicates() -> None:
    view = BestFaces(max_tracks_per_stream=3)
    first = _best(1, 100, 0.5)
    assert view.update(first) is True
    assert view.update(copy.copy(first)) is False  # a redelivery
    view.update(_best(1, 120, 0.7))
    view.update(_best(1, 110, 0.9))  # stale: an older frame than the current best
    key = ("edge-07:4121", 1)
    assert view.best("lobby-cam-1")[key].frame_index == 120
    summary = examples()["track_summary"]
    view.update(dataclasses.replace(summary, track_id=1))
    final = view.best("lobby-cam-1")[key]
    assert final.ended
    assert final.frame_index == summary.best.frame_index
    view.update(_best(1, 130, 0.99))  # after the summary: ignored
    assert view.best("lobby-cam-1")[key].frame_index == summary.best.frame_index
    for track in (2, 3, 4):
        view.update(_best(track, 200 + track, 0.1 * track))
    assert sorted(t for _, t in view.best("lobby-cam-1")) == [2, 3, 4]  # ended track 1 went
    assert [f.track_id for f in view.top("lobby-cam-1", 2)] == [4, 3]
    status = examples()["stream_status"]
    view.update(status)
    view.update(examples()["face_observation"])
    assert view.status("lobby-cam-1") == status
    assert view.streams == ("lobby-cam-1",)
    assert view.best("other") == {}
    assert view.status("other") is None


def test_a_summary_without_scores_forgets_the_track() -> None:
    view = BestFaces()
    view.update(_best(5, 10, 0.4))
    unscored = dataclasses.replace(
        examples()["track_summary"], track_id=5, observations_scored=0, best=None, curve=None
    )
    view.update(unscored)
    assert view.best("lobby-cam-1") == {}


# ---- layering ------------------------------------------------------------------------------


def test_events_are_pure_data() -> None:
    forbidden = ("torch", "mediapipe", "kafka", "click", "engines", "pipelines", "monitor.cli")
    offenders = [
        f"{file}:{line} imports {name}"
        for file, line, name in imports("monitor/events")
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]
    assert offenders == []
    assert "monitor.events" in sys.modules


def test_schemas_ship_inside_the_package() -> None:
    folder = ROOT / "monitor" / "events" / "schemas" / "v1"
    assert sorted(p.stem for p in folder.glob("*.json")) == sorted(["defs", *schemas.KINDS])
    for name in ("defs", *schemas.KINDS):
        assert schemas.load(name)["$id"].startswith(schemas.BASE_URI + "v1/")


def test_uuid_fields_are_uuids() -> None:
    event = parse(to_record(examples()["best_frame"]))
    assert isinstance(event.event_id, UUID)
    assert isinstance(event.crop.crop_id, UUID)
    assert isinstance(event, BestFrameEvent)
    assert not isinstance(event, FaceObservationEvent)
    assert isinstance(examples()["track_summary"], TrackSummaryEvent)


def test_the_largest_possible_event_is_small() -> None:
    """Every field is bounded, so even a worst-case event is far below the record limit."""
    wide = "\U0001f600"  # 4 bytes of UTF-8 per character
    summary = examples()["track_summary"]
    points = [
        CurvePoint(frame_index=10**12 + i, pts=1e9 + i / 3, score=1 / 3 + i) for i in range(200)
    ]
    crop = dataclasses.replace(
        summary.best.crop, delivery="claim_check", uri="file:///" + wide * 2040
    )
    worst = dataclasses.replace(
        summary,
        stream_id=wide * 256,
        producer=wide * 256,
        first_frame=0,
        last_frame=10**12 + 200,
        frames_seen=10**12,
        observations_scored=200,
        curve=QualityCurve.from_points(points),
        best=dataclasses.replace(summary.best, crop=crop),
    )
    assert to_record(worst).size < 20_000
