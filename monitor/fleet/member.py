"""``FleetMember``: one ``fqm run --fleet`` process in the consumer group of the fleet topic.

Partition ownership is camera ownership: the process runs exactly the cameras whose records
are in the partitions the group assigned it. The group uses the cooperative-sticky assignor
(KIP-429): a rebalance moves only the partitions that must move, and a moving partition is
first revoked from its old owner and given to its new owner in a second round, so the
cameras that stay put are never touched.

Threads: kafka-python runs the group protocol (heartbeats, joins, the rebalance callbacks)
on its own IO thread. The callbacks only record what was revoked, lost or assigned; the
command's loop calls :meth:`FleetMember.poll`, which reads the fleet records, works out
what changed and returns it as :class:`FleetChanges` for the loop to apply with
``Service.remove_stream`` / ``add_stream`` (:func:`apply_changes`), from that one thread.

Reading: on assignment a partition is read from its beginning (the topic is compacted: the
latest value per key wins, a tombstone removes the camera) up to its end offset of that
moment before any of its cameras starts, so a camera updated three times starts once, with
its latest config; after that every new record is applied as it comes (add, change:
restart, tombstone or ``enabled: false``: stop). Offsets are never committed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from kafka import KafkaConsumer, TopicPartition
from kafka import errors as kafka_errors
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor

from monitor.config import CameraConfig, ConfigError, check_camera_id, stream_plan
from monitor.fleet.records import camera_from_record
from monitor.fleet.topic import FleetTopicError
from monitor.kafka_bootstrap import Bootstrap
from pipelines.urls import mask_url

log = logging.getLogger(__name__)

#: Default session timeout: how long after a process dies its cameras start elsewhere
#: (plus a rebalance and the cameras' start). The broker accepts 6-1800 s by default
#: (group.min.session.timeout.ms, group.max.session.timeout.ms).
DEFAULT_SESSION_TIMEOUT_S = 10.0
#: Metadata refresh (kafka-python's default is 5 minutes).
METADATA_MAX_AGE_MS = 5_000
#: How long joining waits for the fleet topic's partitions to be known.
PARTITIONS_WAIT_S = 30.0

#: ``stream_status`` ``down`` reasons of a camera this process stops.
REASON_REVOKED = "handed over: partition {partition} of the fleet moved to another process"
REASON_LOST = "partition {partition} lost: this process was dropped from the fleet group"
REASON_REMOVED = "removed from the fleet"
REASON_DISABLED = "disabled in the fleet"
REASON_CHANGED = "fleet config changed: restarting"
REASON_LEFT = "this process left the fleet group"


@dataclass(frozen=True)
class FleetChanges:
    """What the loop does now: stop these (with the ``down`` reason), then start these."""

    stop: tuple[tuple[str, str], ...] = ()
    start: tuple[tuple[str, CameraConfig], ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.stop or self.start)


@dataclass
class _Camera:
    partition: int
    value: bytes
    running: bool  # False: disabled, or its config could not be used here


@dataclass
class _Events:
    """What the rebalance callbacks saw, in order, until the loop takes it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    items: list[tuple[str, frozenset[int]]] = field(default_factory=list)

    def add(self, kind: str, partitions: frozenset[int]) -> None:
        with self.lock:
            self.items.append((kind, partitions))

    def take(self) -> list[tuple[str, frozenset[int]]]:
        with self.lock:
            items, self.items = self.items, []
        return items


class _Listener(ConsumerRebalanceListener):
    """Runs on kafka-python's IO thread: records and returns at once (a slow callback would
    hold up heartbeats)."""

    def __init__(self, topic: str, events: _Events) -> None:
        self.topic = topic
        self.events = events

    def _mine(self, tps) -> frozenset[int]:
        return frozenset(tp.partition for tp in tps if tp.topic == self.topic)

    def on_partitions_revoked(self, revoked) -> None:
        self.events.add("revoked", self._mine(revoked))

    def on_partitions_assigned(self, assigned) -> None:
        self.events.add("assigned", self._mine(assigned))

    def on_partitions_lost(self, lost) -> None:
        self.events.add("lost", self._mine(lost))


class FleetMember:
    """Joins ``group`` on the fleet ``topic`` and follows the cameras of its partitions.

    Args:
        bootstrap: the Kafka cluster.
        topic: the fleet topic (compacted, key: camera id).
        group: the consumer group every process of the fleet shares.
        client_id: names this process to the broker (the events' producer name).
        session_timeout_s: how long the group waits for a silent process before giving its
            cameras to the others; heartbeats every third of it.
        env: where ``${VAR}`` in camera configs are looked up (default ``os.environ``).
    """

    def __init__(
        self,
        bootstrap: Bootstrap,
        topic: str,
        group: str,
        *,
        client_id: str = "fqm",
        session_timeout_s: float = DEFAULT_SESSION_TIMEOUT_S,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.topic = topic
        self.group = group
        self._env = os.environ if env is None else env
        self._events = _Events()
        session_ms = int(session_timeout_s * 1000)
        self.consumer = KafkaConsumer(
            **bootstrap.client_kwargs(),
            group_id=group,
            client_id=client_id[:200],
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            allow_auto_create_topics=False,
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(500, session_ms // 3),
            partition_assignment_strategy=[CooperativeStickyAssignor],
            # A leader that assigned before it knew the topic's partitions (a topic just
            # created) reassigns once its metadata refreshes: keep that wait short.
            metadata_max_age_ms=METADATA_MAX_AGE_MS,
        )
        self._wait_for_partitions(topic)
        self.consumer.subscribe([topic], listener=_Listener(topic, self._events))
        self._owned: set[int] = set()
        self._catching_up: dict[int, int | None] = {}  # partition -> end offset to reach
        self._tables: dict[int, dict[str, bytes]] = {}  # partition -> camera -> value
        self._dirty: set[int] = set()
        self._cameras: dict[str, _Camera] = {}

    def _wait_for_partitions(self, topic: str) -> None:
        """Join only once this client's metadata lists the topic's partitions: a group
        leader without them assigns nothing (kafka-python warns "No partition metadata")."""
        deadline = time.monotonic() + PARTITIONS_WAIT_S
        while not self.consumer.partitions_for_topic(topic):
            if time.monotonic() > deadline:
                raise FleetTopicError(
                    f"fleet topic {topic}: no partitions known after {PARTITIONS_WAIT_S:.0f} s; "
                    "create it with fqm cameras add, or check the broker"
                )
            time.sleep(0.2)

    # -- what it owns ----------------------------------------------------------------------

    @property
    def partitions(self) -> tuple[int, ...]:
        """The partitions this process owns now."""
        return tuple(sorted(self._owned))

    @property
    def cameras(self) -> tuple[str, ...]:
        """The cameras this process was told to run (by :meth:`poll`)."""
        return tuple(sorted(c for c, cam in self._cameras.items() if cam.running))

    def _tp(self, partition: int) -> TopicPartition:
        return TopicPartition(self.topic, partition)

    # -- the loop's call -------------------------------------------------------------------

    def poll(self, timeout_s: float = 0.1) -> FleetChanges:
        """Read what arrived (waiting up to ``timeout_s``), take the rebalances seen, and
        return the cameras to stop and to start now."""
        batches = self.consumer.poll(timeout_ms=int(timeout_s * 1000))
        stop: list[tuple[str, str]] = []
        for kind, parts in self._events.take():
            if kind == "assigned":
                self._assigned(parts)
            else:
                stop += self._dropped(kind, parts)
        for tp, batch in batches.items():
            table = self._tables.get(tp.partition)
            if tp.topic != self.topic or table is None:
                continue  # a partition revoked meanwhile
            for r in batch:
                cid = _camera_id(r.key)
                if cid is None:
                    continue
                if r.value is None:
                    table.pop(cid, None)
                else:
                    table[cid] = r.value
            self._dirty.add(tp.partition)
        self._catch_up()
        start: list[tuple[str, CameraConfig]] = []
        for partition in sorted(self._dirty - set(self._catching_up)):
            s, t = self._diff(partition)
            stop += s
            start += t
        self._dirty &= set(self._catching_up)
        return FleetChanges(tuple(stop), tuple(start))

    def _assigned(self, parts: frozenset[int]) -> None:
        new = sorted(parts - self._owned)
        if not new:
            return
        self._owned |= set(new)
        for p in new:
            self._tables[p] = {}
            self._catching_up[p] = None
        self.consumer.seek_to_beginning(*[self._tp(p) for p in new])
        log.warning(
            "fleet %s: assigned partitions %s; now owning %s", self.topic, new, self.partitions
        )

    def _dropped(self, kind: str, parts: frozenset[int]) -> list[tuple[str, str]]:
        gone = sorted(parts & self._owned)
        if not gone:
            return []
        template = REASON_REVOKED if kind == "revoked" else REASON_LOST
        stop = []
        for p in gone:
            self._owned.discard(p)
            self._tables.pop(p, None)
            self._catching_up.pop(p, None)
            self._dirty.discard(p)
            for cid, cam in list(self._cameras.items()):
                if cam.partition == p:
                    del self._cameras[cid]
                    if cam.running:
                        stop.append((cid, template.format(partition=p)))
        log.warning(
            "fleet %s: partitions %s %s (cameras %s); now owning %s",
            self.topic,
            gone,
            kind,
            [cid for cid, _ in stop],
            self.partitions,
        )
        return stop

    def _catch_up(self) -> None:
        """Mark partitions read to the end offset they had when assigned."""
        if not self._catching_up:
            return
        unknown = [self._tp(p) for p, end in self._catching_up.items() if end is None]
        if unknown:
            try:
                ends = self.consumer.end_offsets(unknown)
            except kafka_errors.KafkaError as exc:
                log.warning("fleet %s: end offsets not read yet: %s", self.topic, exc)
                return
            for tp, end in ends.items():
                if tp.partition in self._catching_up:
                    self._catching_up[tp.partition] = end
        for p, end in list(self._catching_up.items()):
            if end is None:
                continue
            try:
                position = self.consumer.position(self._tp(p), timeout_ms=1000)
            except (kafka_errors.IllegalStateError, kafka_errors.KafkaTimeoutError):
                continue  # revoked meanwhile (the next poll says so), or not known yet
            if position is not None and position >= end:
                del self._catching_up[p]
                self._dirty.add(p)

    def _diff(self, partition: int) -> tuple[list[tuple[str, str]], list]:
        table = self._tables.get(partition, {})
        stop: list[tuple[str, str]] = []
        start: list[tuple[str, CameraConfig]] = []
        for cid, cam in list(self._cameras.items()):
            if cam.partition == partition and cid not in table:
                del self._cameras[cid]
                if cam.running:
                    stop.append((cid, REASON_REMOVED))
        for cid, value in table.items():
            cam = self._cameras.get(cid)
            if cam is not None and cam.value == value:
                continue
            camera = self._camera(cid, value)
            runs = camera is not None and camera.enabled
            if cam is not None and cam.running:
                reason = REASON_CHANGED if runs else REASON_DISABLED
                stop.append((cid, reason))
            if runs:
                start.append((cid, camera))
            self._cameras[cid] = _Camera(partition, value, runs)
        return stop, start

    def _camera(self, camera_id: str, value: bytes) -> CameraConfig | None:
        try:
            return camera_from_record(camera_id, value, self._env)
        except ConfigError as exc:
            log.error("fleet %s: camera %s not started here:\n%s", self.topic, camera_id, exc)
            return None

    def not_started(self, camera_ids) -> None:
        """The service refused to start these (an id taken by a local source, a bad
        location): they are not this member's to stop later; a new record retries them."""
        for cid in camera_ids:
            cam = self._cameras.get(cid)
            if cam is not None:
                cam.running = False

    def close(self, timeout_s: float = 10.0) -> None:
        """Leave the group (the others take the partitions at once, no session timeout);
        stop this process's cameras before calling it."""
        self.consumer.close(autocommit=False, timeout_ms=int(timeout_s * 1000))


def _camera_id(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return check_camera_id(key.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        log.error("fleet: a record whose key %r is not a camera id is ignored", key[:80])
        return None


def apply_changes(
    service,
    changes: FleetChanges,
    *,
    stop_deadline_s: float = 30.0,
    analyse_fps: float | None = None,
    max_frames: int | None = None,
) -> list[str]:
    """Apply ``changes`` to a running ``monitor.service.Service``: stops first (each
    camera's tracks end and are published, then its ``down`` status with the reason), then
    starts. ``analyse_fps`` and ``max_frames`` apply to cameras that do not set their own.
    A camera that cannot start is logged and returned (for ``FleetMember.not_started``);
    the others go on."""
    failed = []
    for cid, reason in changes.stop:
        if not service.remove_stream(cid, stop_deadline_s, reason=reason):
            log.error("fleet: camera %s did not stop within %.0f s", cid, stop_deadline_s)
    for cid, camera in changes.start:
        plan = stream_plan(cid, camera)
        if plan.analyse_fps is None and analyse_fps is not None:
            plan = replace(plan, analyse_fps=analyse_fps)
        if plan.max_frames is None and max_frames is not None:
            plan = replace(plan, max_frames=max_frames)
        try:
            service.add_stream(plan)
        except Exception as exc:  # one camera must not stop the others
            log.error("fleet: camera %s not started: %s", cid, mask_url(str(exc)))
            failed.append(cid)
    if not changes.empty:
        log.warning(
            "fleet: stopped %s, started %s",
            [cid for cid, _ in changes.stop],
            [cid for cid, _ in changes.start if cid not in failed],
        )
    return failed
