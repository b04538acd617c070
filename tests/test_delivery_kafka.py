"""The Kafka sink against a real broker: round trip, too-large records, a full spool, a
broker SIGKILLed and restarted mid-run, SIGTERM to a publishing process, and the producer
settings it refuses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from monitor.delivery.kafka_sink import (
    KafkaSink,
    KafkaSinkConfig,
    SinkClosedError,
    TopicSpec,
    check_producer_settings,
    ensure_topics,
)
from monitor.delivery.record import Record
from monitor.delivery.spool import SpoolLimits
from tests.support.kafka_broker import KafkaBroker, free_ports

REPO = Path(__file__).resolve().parents[1]
KEYS = [f"camera-{i}".encode() for i in range(5)]

#: Short timeouts, so an outage is noticed in seconds (deadlines only; nothing asserts time).
FAST = KafkaSinkConfig(
    linger_ms=5,
    request_timeout_ms=2_000,
    delivery_timeout_ms=4_000,
    max_block_ms=2_000,
    bootstrap_timeout_ms=2_000,
    retry_interval_s=0.3,
)


def _record(topic: str, i: int, size: int = 64) -> Record:
    key = KEYS[i % len(KEYS)]
    # Random bytes: gzip must not shrink a record meant to be over a limit below it.
    value = b"%d:" % i + (os.urandom(size) if size > 1000 else b"x" * size)
    return Record(topic, key, value, (("id", str(i).encode()),))


def _consume(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list:
    """Every record now in ``topic``, in partition order (reads up to the end offsets)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records: list = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, "timed out reading the topic back"
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def _check(records: list, expected_ids: set[int]) -> dict[str, int]:
    """Every id arrived, in order per key (by first appearance); returns the counts."""
    ids = [int(dict(r.headers)["id"]) for r in records]
    seen = Counter(ids)
    missing = expected_ids - set(seen)
    assert not missing, f"{len(missing)} records lost, e.g. {sorted(missing)[:10]}"
    firsts: dict[bytes, list[int]] = defaultdict(list)
    done: set[int] = set()
    for r, i in zip(records, ids, strict=True):
        assert r.key == KEYS[i % len(KEYS)]
        if i not in done:
            done.add(i)
            firsts[r.key].append(i)
    for key, order in firsts.items():
        assert order == sorted(order), f"records of {key!r} out of order"
    return {
        "in_kafka": len(ids),
        "unique": len(seen),
        "duplicates": sum(n - 1 for n in seen.values()),
    }


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# -- settings (no broker) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"enable_idempotence": False}, "enable_idempotence"),
        ({"acks": 1}, "acks"),
        ({"acks": 0}, "acks"),
        ({"retries": 0}, "retries"),
        ({"max_in_flight_requests_per_connection": 6}, "max_in_flight_requests_per_connection"),
        ({"transactional_id": "fqm"}, "transactional_id"),
        ({"api_version": (0, 10, 2)}, "api_version"),
        ({"linger_ms": 5}, "linger_ms"),
        ({"bootstrap_servers": "elsewhere:9092"}, "bootstrap_servers"),
        ({"no_such_setting": 1}, "no_such_setting"),
    ],
)
def test_settings_that_would_weaken_delivery_fail_fast(
    overrides: dict[str, object], named: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=named):
        check_producer_settings(overrides)
    # The sink refuses them before connecting anywhere (port 1: nothing listens there).
    with pytest.raises(ValueError, match=named):
        KafkaSink("127.0.0.1:1", tmp_path, KafkaSinkConfig(producer_overrides=overrides))


def test_inconsistent_config_fails_fast() -> None:
    with pytest.raises(ValueError, match="delivery_timeout_ms"):
        KafkaSinkConfig(delivery_timeout_ms=1000, request_timeout_ms=2000)
    with pytest.raises(ValueError, match="snappy"):
        KafkaSinkConfig(compression_type="snappy")  # codec not installed here
    check_producer_settings({"acks": "all", "retries": 5, "ssl_cafile": "/ca.pem"})


# -- against the session broker -------------------------------------------------------


@pytest.mark.kafka
def test_round_trip_keeps_key_value_headers_and_order(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = kafka_topic_factory(partitions=3)
    sent = [_record(topic, i) for i in range(300)]
    start = time.monotonic()
    with KafkaSink(kafka_bootstrap, tmp_path, FAST) as sink:
        for record in sent:
            sink.publish(record)
        assert sink.flush(30)
        elapsed = time.monotonic() - start
        stats = sink.stats()
    print(f"\nround trip: {len(sent)} records in {elapsed:.2f} s; {stats}")
    assert (stats.published, stats.delivered, stats.spooled) == (300, 300, 0)
    records = _consume(kafka_bootstrap, topic)
    by_id = {int(dict(r.headers)["id"]): r for r in records}
    for i, record in enumerate(sent):
        got = by_id[i]
        assert (got.key, got.value, list(got.headers)) == (
            record.key,
            record.value,
            list(record.headers),
        )
    assert _check(records, set(range(300)))["duplicates"] == 0
    with pytest.raises(SinkClosedError):
        sink.publish(sent[0])


@pytest.mark.kafka
def test_too_large_records_fail_loudly_and_do_not_block_the_rest(
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = kafka_topic_factory(configs={"max.message.bytes": "20000"})
    config = replace(FAST, max_request_size=100_000)
    with KafkaSink(kafka_bootstrap, tmp_path, config) as sink:
        for i in range(20):
            size = {5: 50_000, 12: 200_000}.get(i, 64)  # 5: the broker refuses; 12: we do
            sink.publish(_record(topic, i, size))
        assert sink.flush(30)
        # kafka-python made its producer fatal on the broker's refusal; the sink rebuilt it
        # and re-sent the spooled records one at a time.
        _wait(lambda: sink.stats().spool_records == 0, 30, "the spool to drain")
        stats = sink.stats()
    print(f"\ntoo large: {stats}")
    assert stats.too_large == 2
    assert stats.delivered == 18
    assert stats.failed == {"too_large": 2}
    logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(topic in m and "200" in m and "too large" in m for m in logged), logged
    assert any(topic in m and "50" in m and "too large" in m for m in logged), logged
    _check(_consume(kafka_bootstrap, topic), set(range(20)) - {5, 12})


@pytest.mark.kafka
def test_a_full_spool_refuses_new_records_and_keeps_the_oldest(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = kafka_topic_factory(partitions=2)
    (nowhere,) = free_ports(1)
    config = replace(FAST, spool=SpoolLimits(max_records=10))
    sink = KafkaSink(f"127.0.0.1:{nowhere}", tmp_path, config)  # no broker: all to the spool
    for i in range(15):
        sink.publish(_record(topic, i))
    sink.close(5)
    stats = sink.stats()
    print(f"\nfull spool: {stats}")
    assert (stats.published, stats.spooled, stats.dropped_spool_full) == (15, 10, 5)
    assert stats.spool_records == 10
    assert stats.failed == {"spool_full": 5}

    # A later sink on the same directory replays the 10 oldest once the broker is there.
    with KafkaSink(kafka_bootstrap, tmp_path, config) as again:
        _wait(lambda: again.stats().spool_records == 0, 30, "the spool to drain")
        replayed = again.stats().replayed
    assert replayed == 10
    counts = _check(_consume(kafka_bootstrap, topic), set(range(10)))
    assert counts["unique"] == 10


@pytest.mark.kafka
def test_ensure_topics_is_idempotent(kafka_bootstrap: str, kafka_admin) -> None:
    name = f"fqm-test-ensure-{os.getpid()}-{time.monotonic_ns()}"
    spec = TopicSpec(name, partitions=2, replication_factor=1, retention_ms=3_600_000)
    try:
        assert ensure_topics(kafka_bootstrap, [spec]) == [name]
        assert ensure_topics(kafka_bootstrap, [spec]) == []
        assert name in kafka_admin.list_topics()
    finally:
        kafka_admin.delete_topics([name], raise_errors=False)


# -- a broker of our own, killed and restarted ----------------------------------------


@pytest.mark.kafka
def test_broker_killed_and_restarted_mid_run_loses_nothing(tmp_path: Path) -> None:
    total, kill_at, restart_at = 1500, 300, 900
    with KafkaBroker() as broker:
        bootstrap = broker.bootstrap_servers
        topic = "fqm-outage"
        ensure_topics(bootstrap, [TopicSpec(topic, partitions=3, replication_factor=1)])
        sink = KafkaSink(bootstrap, tmp_path, FAST)
        for i in range(total):
            if i == kill_at:
                broker.kill()
            if i == restart_at:
                # Until the outage is noticed (a delivery timed out into the spool). Not all
                # of the in-flight records settle: kafka-python's sender stops expiring
                # batches while it waits for a new producer id from the absent broker.
                _wait(lambda: sink.stats().spooled > 0, 30, "records to be spooled")
                broker.restart()
            sink.publish(_record(topic, i))
            time.sleep(0.002)
        _wait(lambda: sink.stats().spool_records == 0, 45, "the spool to drain")
        assert sink.flush(30)
        sink.close(10)
        stats = sink.stats()
        counts = _check(_consume(bootstrap, topic), set(range(total)))
    print(f"\noutage: produced={total} {counts} {stats}")
    assert stats.published == total
    assert stats.spooled > 0
    assert stats.replayed > 0
    assert stats.delivered >= total
    assert stats.failed == {}
    assert counts["unique"] == total


# -- SIGTERM to a publishing process --------------------------------------------------

_CHILD = """
import sys, time
from pathlib import Path
from monitor.delivery.kafka_sink import KafkaSink, KafkaSinkConfig, install_sigterm_handler
from monitor.delivery.record import Record

bootstrap, topic, spool, accepted, close_timeout = sys.argv[1:6]
config = KafkaSinkConfig(linger_ms=50, request_timeout_ms=2000, delivery_timeout_ms=4000)
sink = KafkaSink(bootstrap, Path(spool), config)
install_sigterm_handler(sink)
with open(accepted, "w") as out:
    i = 0
    while not sink.stop_requested:
        key = f"camera-{i % 5}".encode()
        sink.publish(Record(topic, key, (b"%d:" % i).ljust(64, b"x"), (("id", str(i).encode()),)))
        out.write(f"{i}\\n")  # reported as published: publish() returned
        out.flush()
        i += 1
        time.sleep(0.001)
sink.close(float(close_timeout))
s = sink.stats()
print(f"child: published={s.published} delivered={s.delivered} spooled={s.spooled}", flush=True)
"""


@pytest.mark.kafka
def test_sigterm_persists_everything_reported_as_published(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = kafka_topic_factory(partitions=3)
    accepted = tmp_path / "accepted.txt"
    spool = tmp_path / "spool"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, kafka_bootstrap, topic, str(spool), str(accepted), "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait(
            lambda: (
                (accepted.exists() and accepted.read_text().count("\n") >= 500)
                or bool(child.poll() is not None)
            ),
            45,
            "the child to publish",
        )
        child.send_signal(signal.SIGTERM)
        output, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, output
    ids = {int(line) for line in accepted.read_text().split()}

    # Replay what the child left in its spool (close timeout 0: what was in flight).
    with KafkaSink(kafka_bootstrap, spool, FAST) as again:
        left = again.stats().spool_records
        _wait(lambda: again.stats().spool_records == 0, 30, "the spool to drain")
    counts = _check(_consume(kafka_bootstrap, topic), ids)
    print(f"\nSIGTERM: {output.strip()}; accepted={len(ids)} left_in_spool={left} {counts}")
