"""Read whole topics back from a real broker in tests: raw records, no group, no dedup.

``EventConsumer`` (the product's reader) drops duplicates by event id; a test that must
see what the broker holds (duplicates included) reads the records themselves here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition


class TopicReader:
    """Every record of ``topics`` from their start, as it arrives.

    The topics may not exist yet (the producer creates them): nothing is read until all of
    them do, and the reader never creates one itself (a consumer's metadata request would
    auto-create it with the broker's defaults, not the producer's).
    """

    def __init__(self, bootstrap: str, topics: Sequence[str]) -> None:
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.records: list = []
        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="fqm-tests-reader")
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            allow_auto_create_topics=False,
        )
        self._partitions: list[TopicPartition] = []

    def _assign(self) -> bool:
        if self._partitions:
            return True
        if not set(self.topics) <= set(self._admin.list_topics()):
            return False
        tps = []
        for topic in self.topics:
            parts = self._consumer.partitions_for_topic(topic)
            if not parts:
                return False
            tps += [TopicPartition(topic, p) for p in sorted(parts)]
        self._consumer.assign(tps)
        self._consumer.seek_to_beginning(*tps)
        self._partitions = tps
        return True

    def poll(self, timeout_s: float = 1.0) -> list:
        """The records that arrived since the last call (also kept in ``records``)."""
        if not self._assign():
            time.sleep(timeout_s)
            return []
        new = []
        for batch in self._consumer.poll(timeout_ms=int(timeout_s * 1000)).values():
            new.extend(batch)
        self.records.extend(new)
        return new

    def read_to_end(self, timeout_s: float = 60.0) -> list:
        """Everything in the topics now (up to their end offsets); returns ``records``."""
        deadline = time.monotonic() + timeout_s
        while not self._assign():
            assert time.monotonic() < deadline, f"topics {self.topics} never appeared"
            time.sleep(0.5)
        end = self._consumer.end_offsets(self._partitions)
        while any(self._consumer.position(tp) < end[tp] for tp in self._partitions):
            assert time.monotonic() < deadline, "timed out reading the topics back"
            self.poll(0.5)
        return self.records

    def close(self) -> None:
        self._consumer.close()
        self._admin.close()

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
