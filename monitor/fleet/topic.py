"""The fleet topic: a compacted Kafka topic, one record per camera (key: its id).

``ensure_fleet_topic`` creates it (``cleanup.policy=compact``, N partitions);
``put_camera`` writes a camera's record (or a tombstone, which removes it); ``read_fleet``
reads the whole topic and keeps the latest value per key, as compaction will. A camera's
partition is the one its key hashes to with the producers' default partitioner (murmur2,
the same in kafka-python and the Java client): ``partition_of``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.partitioner import murmur2

from monitor.delivery.kafka_sink import TopicSpec, ensure_topics
from monitor.kafka_bootstrap import Bootstrap, check_reachable

#: Partitions of a new fleet topic: the most processes that can share the fleet (a process
#: owns whole partitions); 12 splits evenly over 1, 2, 3, 4, 6 and 12 processes.
DEFAULT_PARTITIONS = 12
#: Seconds a command waits for the broker.
TIMEOUT_S = 30.0


class FleetTopicError(RuntimeError):
    """The fleet topic is missing or cannot be used; the message says what to do."""


def _reachable(bootstrap: Bootstrap, timeout_s: float) -> None:
    try:
        check_reachable(bootstrap, min(timeout_s, 5.0))
    except ConnectionError as exc:
        raise FleetTopicError(str(exc)) from None


def fleet_topic_spec(topic: str, partitions: int = DEFAULT_PARTITIONS, replication: int = 1):
    """A compacted topic that keeps the latest record per camera for ever.

    ``segment.ms`` of an hour lets compaction drop old versions within hours rather than
    the default week (it never touches the active segment); tombstones are kept a day
    (``delete.retention.ms``) so that a reader catching up sees the removal.
    """
    return TopicSpec(
        topic,
        partitions=partitions,
        replication_factor=replication,
        retention_ms=None,
        configs={
            "cleanup.policy": "compact",
            "segment.ms": str(3600 * 1000),
            "delete.retention.ms": str(24 * 3600 * 1000),
        },
    )


def ensure_fleet_topic(
    bootstrap: Bootstrap,
    topic: str,
    partitions: int = DEFAULT_PARTITIONS,
    replication: int = 1,
    timeout_s: float = TIMEOUT_S,
) -> bool:
    """Create the fleet topic if it does not exist (an existing one is left as it is).
    Returns whether this call created it."""
    _reachable(bootstrap, timeout_s)
    spec = fleet_topic_spec(topic, partitions, replication)
    return bool(ensure_topics(bootstrap, [spec], timeout_s))


def partition_of(camera_id: str, partitions: int) -> int:
    """The partition a camera's record (and so its ownership) lands in."""
    return (murmur2(camera_id.encode()) & 0x7FFFFFFF) % partitions


def topic_exists(bootstrap: Bootstrap, topic: str, timeout_s: float = TIMEOUT_S) -> bool:
    _reachable(bootstrap, timeout_s)
    timeout_ms = int(timeout_s * 1000)
    admin = KafkaAdminClient(
        **bootstrap.client_kwargs(),
        client_id="fqm-cameras",
        bootstrap_timeout_ms=timeout_ms,
        request_timeout_ms=timeout_ms,
    )
    try:
        return topic in set(admin.list_topics())
    finally:
        admin.close()


def put_camera(
    bootstrap: Bootstrap,
    topic: str,
    camera_id: str,
    value: bytes | None,
    timeout_s: float = TIMEOUT_S,
) -> int:
    """Write one camera's record (``None``: a tombstone) and wait for the broker's
    acknowledgement (acks=all). Returns its partition."""
    _reachable(bootstrap, timeout_s)
    timeout_ms = int(timeout_s * 1000)
    producer = KafkaProducer(
        **bootstrap.client_kwargs(),
        client_id="fqm-cameras",
        acks="all",
        linger_ms=0,
        max_block_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
    )
    try:
        future = producer.send(topic, key=camera_id.encode(), value=value)
        return future.get(timeout=timeout_s).partition
    finally:
        producer.close(timeout=timeout_s)


@dataclass(frozen=True)
class FleetRecord:
    """The latest record of one camera."""

    camera_id: str
    partition: int
    offset: int
    value: bytes


def read_fleet(
    bootstrap: Bootstrap, topic: str, timeout_s: float = TIMEOUT_S
) -> tuple[int, dict[str, FleetRecord]]:
    """Every camera of the topic (latest value per key; tombstoned ones left out), read
    from the start to the end offsets of now, and the topic's partition count.

    Raises:
        FleetTopicError: the topic does not exist.
        TimeoutError: the topic could not be read to its end in ``timeout_s``.
    """
    if not topic_exists(bootstrap, topic, timeout_s):
        raise FleetTopicError(f"no fleet topic {topic!r} (fqm cameras add creates it)")
    consumer = KafkaConsumer(
        **bootstrap.client_kwargs(),
        client_id="fqm-cameras",
        enable_auto_commit=False,
        allow_auto_create_topics=False,
    )
    try:
        deadline = time.monotonic() + timeout_s
        parts = None
        while not parts:
            parts = consumer.partitions_for_topic(topic)
            if not parts and time.monotonic() > deadline:
                raise TimeoutError(f"no partitions of {topic!r} in {timeout_s:.0f} s")
            if not parts:
                time.sleep(0.2)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        latest: dict[str, FleetRecord | None] = {}
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic!r} to its end in {timeout_s:.0f} s")
            for batch in consumer.poll(timeout_ms=500).values():
                for r in batch:
                    if r.key is None:
                        continue
                    cid = r.key.decode("utf-8", "replace")
                    latest[cid] = (
                        None
                        if r.value is None
                        else FleetRecord(cid, r.partition, r.offset, r.value)
                    )
        return len(tps), {cid: rec for cid, rec in sorted(latest.items()) if rec is not None}
    finally:
        consumer.close()
