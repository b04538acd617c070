"""The consumer side: the same events read back from Kafka (a real broker) and from a JSONL
folder, duplicates dropped, best faces kept, crops available; ``fqm consume`` on both."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from monitor.cli.app import cli
from monitor.delivery.consumer import ConsumeError, EventConsumer
from monitor.delivery.jsonl_sink import JsonlSink, JsonlSinkConfig
from monitor.delivery.kafka_sink import KafkaSink, TopicSpec, ensure_topics
from monitor.delivery.record import Record
from monitor.events import (
    BestFrameEvent,
    Event,
    Topics,
    attach_crop,
    encode_crop,
    to_records,
)
from monitor.events.examples import examples


def _scenario() -> tuple[list[Event], list[Record], bytes]:
    """Observations of two tracks on two streams, best-frame updates with inline crops
    (the later one better), a summary and a status; and one record published twice."""
    ex = examples()
    jpeg = encode_crop(np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    events: list[Event] = []
    records: list[Record] = []

    def add(event: Event, crop=None) -> None:
        events.append(event)
        records.extend(to_records(event, crop=crop))

    for stream in ("lobby-cam-1", "door-cam-2"):
        for i in range(3):
            obs = ex["face_observation"]
            add(replace(obs, event_id=uuid.uuid4(), stream_id=stream, frame_index=1500 + i))
        for frame, score in ((1510, 0.6), (1515, 0.7841)):
            b = ex["best_frame"]
            quality = replace(b.quality, score=score)
            add(
                replace(
                    b,
                    event_id=uuid.uuid4(),
                    stream_id=stream,
                    frame_index=frame,
                    quality=quality,
                    crop=attach_crop(jpeg),
                ),
                crop=jpeg,
            )
    add(ex["track_summary"])
    add(ex["stream_status"])
    records.append(records[0])  # redelivered (same event id)
    return events, records, jpeg.jpeg


def _check(consumer: EventConsumer, got: list[Event], events: list[Event], jpeg: bytes) -> None:
    assert sorted(str(e.event_id) for e in got) == sorted(str(e.event_id) for e in events)
    assert {e.event_id: e for e in got} == {e.event_id: e for e in events}
    stats = consumer.stats()
    assert stats.duplicates == 1
    assert stats.invalid == {}
    (door,) = consumer.best.top("door-cam-2")
    assert (door.track_id, door.score, door.ended) == (17, 0.7841, False)
    (lobby,) = consumer.best.top("lobby-cam-1")
    assert lobby.ended  # the summary arrived
    assert consumer.best.status("lobby-cam-1").state == "reconnecting"
    best = [e for e in got if isinstance(e, BestFrameEvent)]
    assert best
    assert all(consumer.crop_for(e) == jpeg for e in best)


def test_reads_a_jsonl_folder(tmp_path: Path) -> None:
    events, records, jpeg = _scenario()
    with JsonlSink(tmp_path) as sink:
        for r in records:
            sink.publish(r)
    with EventConsumer.from_dir(tmp_path) as consumer:
        got = list(consumer.events(timeout_s=30))
        _check(consumer, got, events, jpeg)
        assert consumer.stats().crops == 0  # crops are files here, read on demand


def test_reads_rotated_files_oldest_first(tmp_path: Path) -> None:
    obs = examples()["face_observation"]
    events = [replace(obs, event_id=uuid.uuid4(), frame_index=i) for i in range(10)]
    size = len(to_records(events[0])[0].value) + 1
    with JsonlSink(tmp_path, JsonlSinkConfig(max_file_bytes=2 * size, keep_rotated=10)) as sink:
        for e in events:
            sink.publish(to_records(e)[0])
    with EventConsumer.from_dir(tmp_path) as consumer:
        got = list(consumer.events())
    assert [e.frame_index for e in got] == list(range(10))


def test_follows_a_folder_while_the_sink_writes_and_rotates(tmp_path: Path) -> None:
    obs = examples()["face_observation"]
    events = [replace(obs, event_id=uuid.uuid4(), frame_index=i) for i in range(40)]
    size = len(to_records(events[0])[0].value) + 1
    sink = JsonlSink(tmp_path, JsonlSinkConfig(max_file_bytes=5 * size, keep_rotated=20))

    def write() -> None:
        for e in events:
            sink.publish(to_records(e)[0])
            time.sleep(0.01)
        sink.close()

    writer = threading.Thread(target=write)
    with EventConsumer.from_dir(tmp_path, follow=True) as consumer:
        writer.start()
        got = list(consumer.events(max_events=40, timeout_s=60))
    writer.join()
    assert sorted(e.frame_index for e in got) == list(range(40))


def test_bad_sources_raise_consume_error(tmp_path: Path) -> None:
    with pytest.raises(ConsumeError, match="does not exist"):
        EventConsumer.from_dir(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConsumeError, match="not a folder"):
        EventConsumer.from_dir(tmp_path / "file")
    with pytest.raises(ConsumeError, match="no Kafka broker reachable"):
        EventConsumer.from_kafka("127.0.0.1:1")


def test_skips_and_counts_records_that_are_not_events(tmp_path: Path) -> None:
    events, records, _ = _scenario()
    with JsonlSink(tmp_path) as sink:
        sink.publish(records[0])
        sink.publish(Record("fqm.faces", b"lobby-cam-1", b'{"schema_version":"9.0"}'))
        sink.publish(Record("fqm.faces", b"lobby-cam-1", b"not json"))
    with EventConsumer.from_dir(tmp_path) as consumer:
        got = list(consumer.events())
    assert [e.event_id for e in got] == [events[0].event_id]
    assert consumer.stats().invalid == {"SchemaVersionError": 1, "NotAnEventError": 1}


def _kafka_topics(kafka_bootstrap: str) -> Topics:
    topics = Topics.prefixed(f"fqm-test-consume-{uuid.uuid4().hex[:8]}")
    ensure_topics(
        kafka_bootstrap,
        [
            TopicSpec(getattr(topics, n), partitions=2, replication_factor=1)
            for n in topics.__dataclass_fields__
        ],
    )
    return topics


def _publish_to_kafka(kafka_bootstrap: str, topics: Topics, records: list[Record], tmp: Path):
    renamed = [replace(r, topic=getattr(topics, r.topic.removeprefix("fqm."))) for r in records]
    with KafkaSink(kafka_bootstrap, tmp / "spool") as sink:
        for r in renamed:
            sink.publish(r)
        assert sink.flush(timeout_s=60)
    return renamed


@pytest.mark.kafka
def test_reads_the_same_events_from_kafka(kafka_bootstrap: str, tmp_path: Path) -> None:
    events, records, jpeg = _scenario()
    topics = _kafka_topics(kafka_bootstrap)
    _publish_to_kafka(kafka_bootstrap, topics, records, tmp_path)
    with EventConsumer.from_kafka(kafka_bootstrap, topics, from_beginning=True) as consumer:
        got = list(consumer.events(max_events=len(events), timeout_s=60))
        # the duplicate and the crops may come after the last new event: drain briefly
        list(consumer.events(timeout_s=2))
        _check(consumer, got, events, jpeg)
        assert consumer.stats().crops == 4


@pytest.mark.kafka
def test_a_consumer_group_reads_too(kafka_bootstrap: str, tmp_path: Path) -> None:
    events, records, _ = _scenario()
    topics = _kafka_topics(kafka_bootstrap)
    _publish_to_kafka(kafka_bootstrap, topics, records, tmp_path)
    group = f"fqm-test-{uuid.uuid4().hex[:8]}"
    with EventConsumer.from_kafka(
        kafka_bootstrap, topics, group_id=group, from_beginning=True
    ) as consumer:
        got = list(consumer.events(max_events=len(events), timeout_s=90))
    assert len({e.event_id for e in got}) == len(events)


# ---- fqm consume ---------------------------------------------------------------------------


def _json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_cli_json_from_a_folder(tmp_path: Path) -> None:
    events, records, _ = _scenario()
    with JsonlSink(tmp_path) as sink:
        for r in records:
            sink.publish(r)
    result = CliRunner().invoke(
        cli, ["consume", "--from-dir", str(tmp_path), "--json", "--max-events", "5"]
    )
    assert result.exit_code == 0, result.output
    lines = _json_lines(result.output)
    assert len(lines) == 5
    assert {line["event_id"] for line in lines} <= {str(e.event_id) for e in events}

    table = CliRunner().invoke(cli, ["consume", "--from-dir", str(tmp_path)])
    assert table.exit_code == 0, table.output
    assert "lobby-cam-1" in table.output
    assert "door-cam-2" in table.output
    assert "17:0.784" in table.output


@pytest.mark.kafka
def test_cli_json_from_kafka(kafka_bootstrap: str, tmp_path: Path) -> None:
    events, records, _ = _scenario()
    topics = _kafka_topics(kafka_bootstrap)
    _publish_to_kafka(kafka_bootstrap, topics, records, tmp_path)
    prefix = topics.faces.removesuffix(".faces")
    args = ["consume", "--bootstrap", kafka_bootstrap, "--from-beginning", "--json"]
    args += ["--topics-prefix", prefix, "--max-events", str(len(events)), "--timeout", "60"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert sorted(line["event_id"] for line in _json_lines(result.output)) == sorted(
        str(e.event_id) for e in events
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from-dir", "/nonexistent/fqm"], "does not exist"),
        (["--bootstrap", "SASL_SSL://user:hunter2@127.0.0.1:1"], "no Kafka broker reachable"),
        (["--bootstrap", "127.0.0.1:notaport"], "is not a number"),
        ([], "exactly one of --bootstrap and --from-dir"),
    ],
)
def test_cli_errors_are_one_line_without_secrets(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["consume", *args, "--timeout", "5"])
    assert result.exit_code in (1, 2)
    assert message in result.output
    assert "hunter2" not in result.output
    assert "Traceback" not in result.output


# ---- fqm consume --to-dir: a run folder from consumed events -------------------------------


def _folder_events(root: Path) -> list[Event]:
    from monitor.events import loads

    return [
        loads(line)
        for path in sorted(root.glob("*/*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]


class _ListSource:
    """Records in a fixed order, one batch per poll (the order Kafka may deliver them in)."""

    def __init__(self, batches: list[list[Record]]) -> None:
        self.batches = list(batches)

    def poll(self, timeout_s: float) -> list[Record]:
        return self.batches.pop(0) if self.batches else []

    @property
    def exhausted(self) -> bool:
        return not self.batches

    def close(self) -> None:
        pass


def _is_crop_record(r: Record) -> bool:
    return dict(r.headers).get("content-type") == b"image/jpeg"


def test_a_crop_after_its_event_is_still_written_and_missing_ones_counted(tmp_path: Path) -> None:
    from monitor.delivery.mirror import Mirror

    events, records, jpeg = _scenario()
    crops = [r for r in records if _is_crop_record(r)]
    others = [r for r in records if not _is_crop_record(r)]
    assert len(crops) == 4
    # every best-frame event first, then its crop; the last crop never comes
    consumer = EventConsumer(_ListSource([others, crops[:2], crops[2:3]]))
    with consumer, Mirror(consumer, tmp_path / "out") as mirror:
        for message, event in consumer.records():
            mirror.apply(message, event)
        stats = mirror.stats()
        summary = mirror.summary()
    assert (stats.crops, stats.crops_waiting, stats.crops_missing) == (3, 1, 1)
    assert "1 crops missing" in summary
    assert "1 duplicates dropped" in summary
    got = _folder_events(tmp_path / "out")
    assert sorted(str(e.event_id) for e in got) == sorted(str(e.event_id) for e in events)
    written = sorted(p.name for p in (tmp_path / "out").glob("*/crops/*.jpg"))
    best = [e for e in events if isinstance(e, BestFrameEvent)]
    assert written == sorted(f"{e.crop.crop_id}.jpg" for e in best[:3])
    for path in (tmp_path / "out").glob("*/crops/*.jpg"):
        assert path.read_bytes() == jpeg

    # a full waiting list gives up on the oldest (counted missing); later crops still land
    consumer = EventConsumer(_ListSource([others, crops]))
    with consumer, Mirror(consumer, tmp_path / "small", max_waiting=1) as mirror:
        for message, event in consumer.records():
            mirror.apply(message, event)
        stats = mirror.stats()
    assert (stats.crops, stats.crops_waiting, stats.crops_given_up) == (4, 0, 3)


def test_until_down_waits_for_every_stream_and_the_idle_time() -> None:
    from monitor.delivery.mirror import AllDown

    status = examples()["stream_status"]
    obs = examples()["face_observation"]

    def at(stream: str, state: str, second: int):
        t = status.wall_time.replace(second=second)
        return replace(status, event_id=uuid.uuid4(), stream_id=stream, state=state, wall_time=t)

    class Clock:
        last_record_at = 100.0

    rule = AllDown(idle_s=2.0, streams=["late-cam"])
    assert not rule.reached(Clock(), now=200.0)  # nothing seen
    rule.observe(replace(obs, stream_id="door-cam-2"))
    rule.observe(at("lobby-cam-1", "up", 1))
    rule.observe(at("lobby-cam-1", "down", 3))
    rule.observe(at("lobby-cam-1", "up", 2))  # older than the down: ignored
    rule.observe(at("door-cam-2", "down", 5))
    assert rule.streams == {"late-cam": None, "door-cam-2": "down", "lobby-cam-1": "down"}
    assert not rule.reached(Clock(), now=200.0)  # late-cam has not said anything yet
    rule.observe(at("late-cam", "down", 9))
    assert rule.all_down()
    assert not rule.reached(Clock(), now=101.0)  # records arrived 1 s ago
    assert rule.reached(Clock(), now=102.0)
    rule.observe(at("door-cam-2", "connecting", 20))  # came back
    assert not rule.reached(Clock(), now=200.0)


def test_cli_mirrors_a_folder_and_resumes_without_duplicates(tmp_path: Path) -> None:
    events, records, _ = _scenario()
    with JsonlSink(tmp_path / "a") as sink:
        for r in records:
            sink.publish(r)
    args = ["consume", "--from-dir", str(tmp_path / "a"), "--to-dir", str(tmp_path / "b")]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "mirrored 12 events" in first.output
    assert "1 duplicates dropped, 0 crops missing" in first.output
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "mirrored 0 events" in again.output
    assert "12 events were already there" in again.output
    got = _folder_events(tmp_path / "b")
    assert sorted(str(e.event_id) for e in got) == sorted(str(e.event_id) for e in events)
    a_crops = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").glob("*/crops/*"))
    b_crops = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").glob("*/crops/*"))
    assert a_crops == b_crops
    assert len(a_crops) == 4
    report = CliRunner().invoke(cli, ["report", str(tmp_path / "b")])
    assert report.exit_code == 0, report.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from-dir", ".", "--to-dir", "."], "another folder than --from-dir"),
        (["--from-dir", ".", "--stream", "cam"], "--stream is for --until-down"),
    ],
)
def test_cli_mirror_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["consume", *args])
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.kafka
def test_cli_mirrors_a_kafka_run_for_the_report(kafka_bootstrap: str, tmp_path: Path) -> None:
    """The demo's path: fqm run publishes to Kafka; fqm consume --to-dir --until-down mirrors
    it (redelivered records written once); fqm report renders the folder."""
    import hashlib
    import os
    import subprocess
    import sys

    from monitor.assets import asset_path
    from monitor.events import to_record
    from tests.support.clips import cut

    fqm = str(Path(sys.executable).with_name("fqm"))
    env = {k: v for k, v in os.environ.items() if k not in ("FQM_KAFKA_BOOTSTRAP", "FQM_WEIGHTS")}
    clip = cut(asset_path("franck.mp4"), tmp_path / "franck.mp4", 60)
    prefix = f"fqm-mirror-{uuid.uuid4().hex[:8]}"
    topics = Topics.prefixed(prefix)
    args = [str(clip), "--variant", "dslfiqa-tiny", "--max-frames", "60"]
    args += ["--out", str(tmp_path / "run"), "--topics-prefix", prefix]
    run = subprocess.run(
        [fqm, "run", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env | {"FQM_KAFKA_BOOTSTRAP": kafka_bootstrap},
    )
    assert run.returncode == 0, run.stderr

    # what a consumer reads (the reference), then some of it redelivered
    consumed: list[Event] = []
    with EventConsumer.from_kafka(kafka_bootstrap, topics, from_beginning=True) as consumer:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            e.kind == "stream_status" and e.state == "down" for e in consumed
        ):
            consumed += consumer.events(timeout_s=2)
        consumed += consumer.events(timeout_s=2)  # what was still in flight on other topics
    kinds = {e.kind for e in consumed}
    assert {"face_observation", "best_frame", "track_summary", "stream_status"} <= kinds
    again = [e for e in consumed if e.kind != "stream_status"][:5]
    _publish_to_kafka(kafka_bootstrap, topics, [to_record(e) for e in again], tmp_path)

    out = tmp_path / "mirror"
    args = ["--bootstrap", kafka_bootstrap, "--from-beginning", "--topics-prefix", prefix]
    args += ["--to-dir", str(out), "--until-down", "--idle", "1", "--timeout", "60"]
    mirror = subprocess.run(
        [fqm, "consume", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert mirror.returncode == 0, mirror.stderr
    assert "stopped before" not in mirror.stderr  # --until-down ended it, not --timeout
    assert "5 duplicates dropped, 0 crops missing, 0 unreadable records" in mirror.stderr

    lines = [line for p in out.glob("*/*.jsonl") for line in p.read_bytes().splitlines()]
    got = _folder_events(out)
    assert len(lines) == len(got) == len({e.event_id for e in got})  # each event once
    assert {e.event_id: e for e in got} == {e.event_id: e for e in consumed}
    assert {p.name for p in out.glob("*/*.jsonl")} >= {f"{prefix}.faces.jsonl"}
    best = [e for e in got if isinstance(e, BestFrameEvent)]
    assert best
    for e in best:
        jpeg = (out / e.stream_id / "crops" / f"{e.crop.crop_id}.jpg").read_bytes()
        assert len(jpeg) == e.crop.size_bytes
        assert hashlib.sha256(jpeg).hexdigest() == e.crop.sha256

    report = subprocess.run(
        [fqm, "report", str(out)], capture_output=True, text=True, timeout=120, env=env
    )
    assert report.returncode == 0, report.stderr
    assert (out / "report.html").stat().st_size > 0
    assert "1 streams" in report.stdout
