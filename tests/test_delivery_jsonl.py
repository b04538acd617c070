"""The JSONL sink on real files: what it writes, rotation, unsafe stream ids, flush/close,
and a torn last line after a crash."""

from __future__ import annotations

import io
import json
import os
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monitor.delivery.jsonl_sink import (
    JsonlSink,
    JsonlSinkConfig,
    rotated_path,
    stream_dir_name,
)
from monitor.delivery.record import Record, SinkClosedError
from monitor.events import (
    BestFrameEvent,
    FaceObservationEvent,
    attach_crop,
    encode_crop,
    parse,
    to_records,
)
from monitor.events.examples import examples
from tests.test_events import _errors, validators  # noqa: F401 (a fixture)


def _crop():
    rng = np.random.default_rng(7)
    return encode_crop(rng.integers(0, 255, (512, 512, 3), dtype=np.uint8))


def _observation(stream: str = "cam-1", i: int = 0) -> FaceObservationEvent:
    e = examples()["face_observation"]
    return replace(e, event_id=uuid.uuid4(), stream_id=stream, frame_index=i)


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def test_writes_each_record_value_as_a_line_and_crops_as_jpeg(
    tmp_path: Path,
    validators,  # noqa: F811
) -> None:
    crop = _crop()
    events = examples()
    best = replace(events["best_frame"], crop=attach_crop(crop))
    records = [r for k, e in events.items() if k != "best_frame" for r in to_records(e)]
    records += to_records(best, crop=crop)
    with JsonlSink(tmp_path) as sink:
        for r in records:
            sink.publish(r)
        stats = sink.stats()
    assert (stats.published, stats.written, stats.crops, stats.failed) == (5, 4, 1, {})
    assert stats.bytes == sum(len(r.value) + (r.topic != "fqm.crops") for r in records)

    stream = tmp_path / "lobby-cam-1"
    for r in records:
        if r.topic == "fqm.crops":
            continue
        (line,) = _lines(stream / f"{r.topic}.jsonl")
        assert line == r.value
        event = parse((r.topic, None, line, ()))
        assert event == parse(r)
        assert _errors(validators[event.kind], json.loads(line)) == []
    jpeg = (stream / "crops" / f"{best.crop.crop_id}.jpg").read_bytes()
    assert jpeg == crop.jpeg
    image = Image.open(io.BytesIO(jpeg))
    assert (image.format, image.size) == ("JPEG", (512, 512))


def test_rotates_by_size_and_keeps_n(tmp_path: Path) -> None:
    size = len(to_records(_observation())[0].value) + 1
    config = JsonlSinkConfig(max_file_bytes=3 * size + 10, keep_rotated=2)
    records = [to_records(_observation(i=i))[0] for i in range(20)]
    with JsonlSink(tmp_path, config) as sink:
        for r in records:
            sink.publish(r)
        stats = sink.stats()
    current = tmp_path / "cam-1" / "fqm.faces.jsonl"
    files = sorted(p.name for p in current.parent.iterdir())
    assert files == ["fqm.faces.1.jsonl", "fqm.faces.2.jsonl", "fqm.faces.jsonl"]
    assert stats.rotated == 6  # 20 lines, 3 a file: 7 files written, the first 4 deleted
    kept = [line for n in (2, 1, 0) for line in _lines(rotated_path(current, n))]
    assert kept == [r.value for r in records[-len(kept) :]]
    assert len(kept) == 8  # 3 + 3 + 2
    assert all(rotated_path(current, n).stat().st_size <= config.max_file_bytes for n in (0, 1, 2))


def test_keep_zero_rotates_away(tmp_path: Path) -> None:
    size = len(to_records(_observation())[0].value) + 1
    with JsonlSink(tmp_path, JsonlSinkConfig(max_file_bytes=size, keep_rotated=0)) as sink:
        for i in range(3):
            sink.publish(to_records(_observation(i=i))[0])
    assert sorted(p.name for p in (tmp_path / "cam-1").iterdir()) == ["fqm.faces.jsonl"]
    assert len(_lines(tmp_path / "cam-1" / "fqm.faces.jsonl")) == 1


@pytest.mark.parametrize(
    "stream_id",
    ["../evil", "..", ".", "/etc", "a/b/../../c", ".hidden", "x\\y", "cam 1", "é" * 256, "a:b"],
)
def test_unsafe_stream_ids_stay_inside_the_folder(tmp_path: Path, stream_id: str) -> None:
    out = tmp_path / "out"
    with JsonlSink(out) as sink:
        sink.publish(to_records(_observation(stream_id))[0])
    outside = sorted(p for p in tmp_path.rglob("*") if out not in (p, *p.parents))
    assert outside == []
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    assert folder.parent == out
    assert folder.name == stream_dir_name(stream_id)
    assert not folder.name.startswith(".")
    assert "/" not in folder.name
    assert len(folder.name.encode()) <= 255
    (line,) = _lines(folder / "fqm.faces.jsonl")
    assert parse(("fqm.faces", None, line, ())).stream_id == stream_id


def test_stream_dir_names_are_distinct() -> None:
    ids = ["a/b", "a%2Fb", "a_b", "..", ".", "%2E", "x"]
    names = [stream_dir_name(s) for s in ids]
    assert len(set(names)) == len(names)
    with pytest.raises(ValueError, match="empty"):
        stream_dir_name("")


def test_refuses_and_counts_what_it_cannot_write(tmp_path: Path) -> None:
    good = to_records(_observation())[0]
    crop = _crop()
    crop_record = to_records(replace(examples()["best_frame"], crop=attach_crop(crop)), crop=crop)[
        0
    ]
    bad = [
        replace(good, key=b""),
        replace(good, topic="../x"),
        replace(good, value=b'{"a":\n1}'),
        replace(good, headers=(("content-type", b"text/plain"),)),
        replace(crop_record, headers=(("content-type", b"image/jpeg"),)),  # no crop-id
    ]
    with JsonlSink(tmp_path) as sink:
        for r in bad:
            sink.publish(r)
        sink.publish(Record("fqm.crops", b"cam-1", crop.jpeg, (("crop-id", b"not-a-uuid"),)))
        stats = sink.stats()
    assert (stats.published, stats.written, stats.crops) == (6, 0, 0)
    assert stats.failed == {
        "no_key": 1,
        "bad_topic": 1,
        "newline_in_value": 1,
        "content_type": 1,
        "bad_crop_id": 2,
    }
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [".fqm-jsonl.lock"]


def test_flush_close_and_one_sink_per_folder(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path, JsonlSinkConfig(fsync=True))
    record = to_records(_observation())[0]
    sink.publish(record)
    # visible to a reader as soon as publish returns, before any flush
    assert _lines(tmp_path / "cam-1" / "fqm.faces.jsonl") == [record.value]
    with pytest.raises(BlockingIOError, match="another fqm JSONL sink"):
        JsonlSink(tmp_path)
    assert sink.flush(timeout_s=1) is True
    sink.close()
    sink.close()  # idempotent
    with pytest.raises(SinkClosedError):
        sink.publish(record)
    with JsonlSink(tmp_path) as again:  # the folder is free again; appends
        again.publish(record)
    assert _lines(tmp_path / "cam-1" / "fqm.faces.jsonl") == [record.value] * 2


def test_a_torn_last_line_is_cut_on_open(tmp_path: Path) -> None:
    record = to_records(_observation())[0]
    path = tmp_path / "cam-1" / "fqm.faces.jsonl"
    path.parent.mkdir()
    path.write_bytes(record.value + b"\n" + record.value[:40])  # a crash mid-line
    with JsonlSink(tmp_path) as sink:
        sink.publish(record)
    assert _lines(path) == [record.value, record.value]


def test_max_open_files_and_crop_retention(tmp_path: Path) -> None:
    config = JsonlSinkConfig(max_open_files=2, max_crops_per_stream=3)
    crop = _crop()
    with JsonlSink(tmp_path, config) as sink:
        for i in range(5):
            sink.publish(to_records(_observation(f"cam-{i}"))[0])
            assert sink.stats().open_files <= 2
        ids = []
        for _ in range(5):
            best = replace(examples()["best_frame"], event_id=uuid.uuid4(), crop=attach_crop(crop))
            ids.append(best.crop.crop_id)
            for r in to_records(best, crop=crop):
                sink.publish(r)
        stats = sink.stats()
    assert (stats.written, stats.crops, stats.crops_deleted) == (10, 5, 2)
    kept = sorted(p.stem for p in (tmp_path / "lobby-cam-1" / "crops").iterdir())
    assert kept == sorted(str(i) for i in ids[-3:])
    assert not [p for p in tmp_path.rglob(".tmp-*")]
    assert all(os.path.isfile(tmp_path / f"cam-{i}" / "fqm.faces.jsonl") for i in range(5))


def test_best_frame_without_crop_record_is_a_plain_line(tmp_path: Path) -> None:
    # A claim-checked best frame has no crop record: one line on the best topic.
    e = examples()["best_frame"]
    claim = replace(
        e,
        crop=replace(e.crop, delivery="claim_check", uri="file:///crops/x.jpg"),
    )
    assert isinstance(claim, BestFrameEvent)
    with JsonlSink(tmp_path) as sink:
        for r in to_records(claim):
            sink.publish(r)
    assert len(_lines(tmp_path / "lobby-cam-1" / "fqm.best.jsonl")) == 1
    assert not (tmp_path / "lobby-cam-1" / "crops").exists()
