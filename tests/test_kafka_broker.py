"""The test Kafka broker behaves like Kafka: delivery, ordering and consumer-group offsets.

These are the guarantees fqm's event path relies on, checked end to end with the same
client library (kafka-python) the product uses, against the real broker the rest of the
suite gets from ``kafka_bootstrap``.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.serializer import DefaultSerializer, JsonSerializer

from tests.support.kafka_broker import KafkaBroker, KafkaBrokerError

pytestmark = pytest.mark.kafka

#: Keys are spread over partitions by hash; 17 keys land on all 3 partitions of a topic.
KEYS = [f"camera-{i:02d}" for i in range(17)]


def _producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        key_serializer=DefaultSerializer(),
        value_serializer=JsonSerializer(),
    )


def _consumer(bootstrap: str, topic: str, group: str) -> KafkaConsumer:
    return KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        key_deserializer=DefaultSerializer(),
        value_deserializer=JsonSerializer(),
    )


def _produce(bootstrap: str, topic: str, values: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Send each value keyed by its "key"; return the partition each key went to."""
    producer = _producer(bootstrap)
    try:
        futures = [(v["key"], producer.send(topic, key=v["key"], value=v)) for v in values]
        producer.flush(timeout=60)
        partition_of_key: dict[str, int] = {}
        for key, future in futures:
            metadata = future.get(timeout=10)
            assert metadata.topic == topic
            # A key always goes to one partition; per-key order depends on it.
            assert partition_of_key.setdefault(key, metadata.partition) == metadata.partition
        return partition_of_key
    finally:
        producer.close(timeout=10)


def _drain(consumer: KafkaConsumer, expected: int, timeout_s: float = 60.0) -> list[Any]:
    """Poll until ``expected`` records came, then 1 s more so that extras show up too."""
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < expected and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    settle_until = time.monotonic() + 1.0
    while time.monotonic() < settle_until:
        for batch in consumer.poll(timeout_ms=250).values():
            records.extend(batch)
    return records


def test_keyed_messages_arrive_exactly_once_in_per_key_order(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str]
) -> None:
    topic = kafka_topic_factory(partitions=3)
    next_seq: Counter[str] = Counter()
    sent = []
    for i in range(1000):
        key = KEYS[i % len(KEYS)]
        sent.append({"key": key, "seq": next_seq[key], "n": i})
        next_seq[key] += 1

    partition_of_key = _produce(kafka_bootstrap, topic, sent)
    assert set(partition_of_key.values()) == {0, 1, 2}, "keys should spread over 3 partitions"

    consumer = _consumer(kafka_bootstrap, topic, group=f"{topic}-readers")
    try:
        records = _drain(consumer, expected=len(sent))
    finally:
        consumer.close(autocommit=False)

    received = Counter(record.value["n"] for record in records)
    duplicated = sorted(n for n, count in received.items() if count > 1)
    missing = sorted({v["n"] for v in sent} - set(received))
    assert not duplicated, f"delivered more than once: {duplicated[:20]}"
    assert not missing, f"never delivered: {missing[:20]}"
    assert len(records) == len(sent)

    seqs_by_key: defaultdict[str, list[int]] = defaultdict(list)
    for record in records:
        assert record.topic == topic
        assert record.key == record.value["key"]
        assert record.partition == partition_of_key[record.key]
        seqs_by_key[record.key].append(record.value["seq"])
    for key, seqs in seqs_by_key.items():
        assert seqs == list(range(next_seq[key])), f"{key} arrived out of order"


def test_committed_group_offset_is_honoured(
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    kafka_admin: KafkaAdminClient,
) -> None:
    topic = kafka_topic_factory(partitions=3)
    group = f"{topic}-group"
    first = [{"key": KEYS[i % len(KEYS)], "batch": "first", "n": i} for i in range(60)]
    second = [{"key": KEYS[i % len(KEYS)], "batch": "second", "n": i} for i in range(30)]

    _produce(kafka_bootstrap, topic, first)
    consumer = _consumer(kafka_bootstrap, topic, group)
    try:
        got_first = _drain(consumer, expected=len(first))
        consumer.commit()
    finally:
        consumer.close(autocommit=False)
    assert sorted(r.value["n"] for r in got_first) == list(range(len(first)))

    committed = kafka_admin.list_group_offsets({group: None})[group]
    assert sum(om.offset for tp, om in committed.items() if tp.topic == topic) == len(first)

    _produce(kafka_bootstrap, topic, second)
    consumer = _consumer(kafka_bootstrap, topic, group)
    try:
        got_second = _drain(consumer, expected=len(second))
    finally:
        consumer.close(autocommit=False)
    # Only the messages produced after the commit: nothing of the first batch again.
    assert [r.value["batch"] for r in got_second] == ["second"] * len(second)
    assert sorted(r.value["n"] for r in got_second) == list(range(len(second)))

    # Control: a group with no commit starts from the earliest offset and sees both batches,
    # so the result above is the commit's doing, not the topic's.
    consumer = _consumer(kafka_bootstrap, topic, f"{group}-fresh")
    try:
        got_all = _drain(consumer, expected=len(first) + len(second))
    finally:
        consumer.close(autocommit=False)
    assert Counter(r.value["batch"] for r in got_all) == {"first": 60, "second": 30}


def test_missing_jars_error_says_how_to_fetch_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FQM_KAFKA_LIBS", str(tmp_path))
    with pytest.raises(KafkaBrokerError, match=r"scripts/kafka/fetch-jars\.sh"):
        KafkaBroker().start()


def test_broker_that_cannot_start_fails_with_exit_code_and_log() -> None:
    # 2 MB of heap cannot hold a Kafka broker: the JVM dies at start-up.
    broker = KafkaBroker(heap="2m", start_timeout_s=60)
    with pytest.raises(KafkaBrokerError, match=r"exited with code [1-9]") as failure:
        broker.start()
    assert "last lines of" in str(failure.value)
    assert "Error occurred during initialization of VM" in str(failure.value)
    # The failed start cleaned up after itself: no port, no directory, no process.
    with pytest.raises(KafkaBrokerError, match="not started"):
        _ = broker.log_file
    with pytest.raises(KafkaBrokerError, match="not started"):
        _ = broker.bootstrap_servers
