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
