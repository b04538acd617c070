"""The Kafka sink: an idempotent, acks=all kafka-python producer in front of a disk spool.

See :class:`KafkaSink` for the architecture and docs/delivery.md for the guarantees.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from kafka import KafkaAdminClient, KafkaProducer
from kafka import codec as kafka_codec
from kafka import errors as kafka_errors

from monitor.delivery.record import Record, SinkClosedError
from monitor.delivery.spool import Spool, SpoolLimits
from monitor.kafka_bootstrap import Bootstrap, check_reachable, parse_bootstrap

log = logging.getLogger(__name__)

Compression = Literal["gzip", "snappy", "lz4", "zstd"]

_CODEC_INSTALLED = {
    "gzip": kafka_codec.has_gzip,
    "snappy": kafka_codec.has_snappy,
    "lz4": kafka_codec.has_lz4,
    "zstd": kafka_codec.has_zstd,
}

#: Producer settings the sink owns: they come from :class:`Bootstrap` or from the typed
#: fields of :class:`KafkaSinkConfig`, never from ``producer_overrides``.
_OWNED = frozenset(
    {
        "bootstrap_servers",
        "security_protocol",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "client_id",
        "compression_type",
        "linger_ms",
        "batch_size",
        "max_request_size",
        "request_timeout_ms",
        "delivery_timeout_ms",
        "max_block_ms",
        "bootstrap_timeout_ms",
        "key_serializer",
        "value_serializer",
    }
)

#: Errors after which a record goes to the spool, besides kafka-python's retriable ones
#: (timeouts, connection loss, leader changes): the idempotent producer's state can be lost
#: when the broker dies, and a fresh send of the record is then the right thing to do.
_SPOOLABLE = (
    kafka_errors.KafkaConnectionError,
    kafka_errors.BrokerNotAvailableError,
    kafka_errors.OutOfOrderSequenceNumberError,
    kafka_errors.UnknownProducerIdError,
    kafka_errors.InvalidProducerEpochError,
    kafka_errors.IllegalStateError,
)
_TOO_LARGE = (kafka_errors.MessageSizeTooLargeError, kafka_errors.RecordListTooLargeError)


def check_producer_settings(settings: Mapping[str, Any]) -> None:
    """Raise ValueError, naming the setting, for any raw kafka-python producer setting that
    would turn idempotence (or acks=all) off, that kafka-python 3.0 would silently downgrade,
    or that the sink owns.

    kafka-python disables idempotence with only a warning when the user sets ``acks`` other
    than all, ``retries=0`` or ``max_in_flight_requests_per_connection > 5`` while leaving
    ``enable_idempotence`` at its default, and against brokers older than 0.11; a transactional
    id makes it transactional, which the sink does not drive. We refuse all of these up front.

    Example::

        check_producer_settings({"acks": 1})  # ValueError: acks=1 ...
    """
    unknown = sorted(set(settings) - set(KafkaProducer.DEFAULT_CONFIG))
    if unknown:
        raise ValueError(f"unknown kafka-python producer settings: {', '.join(unknown)}")
    owned = sorted(set(settings) & _OWNED)
    if owned:
        raise ValueError(
            f"{', '.join(owned)}: set by the sink (from the bootstrap string or "
            "KafkaSinkConfig's fields), not through producer_overrides"
        )
    if "enable_idempotence" in settings and settings["enable_idempotence"] is not True:
        raise ValueError(
            f"enable_idempotence={settings['enable_idempotence']!r}: the sink needs the "
            "idempotent producer (retries without duplicates or reordering); remove the setting"
        )
    if "acks" in settings and settings["acks"] not in ("all", -1):
        raise ValueError(
            f"acks={settings['acks']!r}: the sink needs acks='all' (a record is acknowledged "
            "only once every in-sync replica has it); kafka-python would also turn "
            "idempotence off. Remove the setting"
        )
    if "retries" in settings and not settings["retries"] >= 1:
        raise ValueError(
            f"retries={settings['retries']!r}: kafka-python turns idempotence off without "
            "retries; leave retries unset (infinite) and bound retrying with "
            "KafkaSinkConfig.delivery_timeout_ms"
        )
    inflight = settings.get("max_in_flight_requests_per_connection")
    if inflight is not None and not 1 <= inflight <= 5:
        raise ValueError(
            f"max_in_flight_requests_per_connection={inflight!r}: idempotence (and per-key "
            "order) needs 1 to 5; kafka-python turns idempotence off above 5"
        )
    if settings.get("transactional_id") is not None:
        raise ValueError(
            "transactional_id: the sink is idempotent, not transactional; remove the setting"
        )
    api_version = settings.get("api_version")
    if api_version is not None and (isinstance(api_version, str) or tuple(api_version) < (0, 11)):
        raise ValueError(
            f"api_version={api_version!r}: idempotence needs a broker of 0.11 or newer, given "
            "as a tuple such as (3, 0); leave it unset to detect the broker's version"
        )


@dataclass(frozen=True)
class KafkaSinkConfig:
    """How the sink batches, compresses, times out and buffers. Every field has a default.

    Attributes:
        client_id: the producer's client id, as the broker logs and quotas see it.
        compression_type: batch codec. lz4 (a dependency of fqm) is the default: on the
            2-core build machine it gave ~1.5x the events/s of gzip at ~0.6x the CPU, as
            most bytes are JPEG crops that no codec shrinks. gzip needs only the standard
            library; snappy and zstd need their codec packages (checked here).
        linger_ms: how long the producer waits to fill a batch before sending it.
        batch_size: the largest batch per partition, bytes.
        max_request_size: the largest record the producer sends, bytes; bigger records fail
            at once as ``too_large``. Keep it at or below the broker's ``message.max.bytes``
            and the topic's ``max.message.bytes`` (the broker rejects anything over those as
            too large too; that is counted the same way).
        request_timeout_ms: how long one produce request waits for the broker.
        delivery_timeout_ms: how long a record may wait for an acknowledgement, retries
            included, before it is handed back to the sink, which spools it. Must be at least
            ``linger_ms + request_timeout_ms``.
        max_block_ms: the longest ``publish`` waits for a new topic's metadata before it
            spools the record instead.
        bootstrap_timeout_ms: how long connecting waits for the broker (at start and at every
            reconnect attempt while the broker is away).
        max_in_flight_bytes: bytes handed to the producer and not yet acknowledged; past
            this, records go to the spool. This (with the replay batch) bounds memory,
            because kafka-python 3.0 has no ``buffer_memory`` of its own.
        replay_batch: records read from the spool and sent per replay round.
        retry_interval_s: the pause between reconnect or replay attempts while the broker
            is away.
        spool: the spool's size limits.
        producer_overrides: further raw kafka-python producer settings (TLS files, say);
            checked by :func:`check_producer_settings`.
    """

    client_id: str = "fqm"
    compression_type: Compression | None = "lz4"
    linger_ms: int = 10
    batch_size: int = 64 * 1024
    max_request_size: int = 1024 * 1024
    request_timeout_ms: int = 10_000
    delivery_timeout_ms: int = 30_000
    max_block_ms: int = 5_000
    bootstrap_timeout_ms: int = 5_000
    max_in_flight_bytes: int = 32 * 1024 * 1024
    replay_batch: int = 500
    retry_interval_s: float = 1.0
    spool: SpoolLimits = field(default_factory=SpoolLimits)
    producer_overrides: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_producer_settings(self.producer_overrides)
        if self.compression_type is not None:
            installed = _CODEC_INSTALLED.get(self.compression_type)
            if installed is None:
                raise ValueError(
                    f"compression_type={self.compression_type!r}: use one of "
                    f"{', '.join(_CODEC_INSTALLED)} or None"
                )
            if not installed():
                raise ValueError(
                    f"compression_type={self.compression_type!r}: its codec package is not "
                    "installed; use 'gzip' (standard library) or install the codec"
                )
        for name in ("linger_ms", "max_block_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in (
            "batch_size",
            "max_request_size",
            "request_timeout_ms",
            "bootstrap_timeout_ms",
            "max_in_flight_bytes",
            "replay_batch",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.delivery_timeout_ms < self.linger_ms + self.request_timeout_ms:
            raise ValueError(
                f"delivery_timeout_ms={self.delivery_timeout_ms} must be at least linger_ms + "
                f"request_timeout_ms ({self.linger_ms + self.request_timeout_ms})"
            )
        if self.retry_interval_s <= 0:
            raise ValueError(f"retry_interval_s must be positive, got {self.retry_interval_s}")

    def producer_kwargs(self, bootstrap: Bootstrap) -> dict[str, Any]:
        """Every keyword argument for ``KafkaProducer``: bootstrap, idempotence, ours."""
        return {
            **bootstrap.client_kwargs(),
            **self.producer_overrides,
            "client_id": self.client_id,
            "acks": "all",
            "enable_idempotence": True,
            "compression_type": self.compression_type,
            "linger_ms": self.linger_ms,
            "batch_size": self.batch_size,
            "max_request_size": self.max_request_size,
            "request_timeout_ms": self.request_timeout_ms,
            "delivery_timeout_ms": self.delivery_timeout_ms,
            "max_block_ms": self.max_block_ms,
            "bootstrap_timeout_ms": self.bootstrap_timeout_ms,
        }


@dataclass(frozen=True)
class SinkStats:
    """A snapshot of the sink's counters (every count since the sink was created).

    Attributes:
        published: records accepted by ``publish``.
        delivered: records the broker acknowledged (direct and replayed).
        replayed: of ``delivered``, those sent from the spool.
        spooled: records written to the spool (a record spooled twice counts twice).
        too_large: records over the producer's or the broker's size limit (never retried).
        dropped_spool_full: records refused because the spool was full.
        failed: every record that will never be delivered, by reason (``too_large``,
            ``spool_full``, or the error's name).
        spool_records, spool_bytes: what the spool holds now.
        in_flight, in_flight_bytes: records handed to the producer, not yet resolved.
        connected: whether the sink has a producer (the broker answered at least once).
    """

    published: int
    delivered: int
    replayed: int
    spooled: int
    too_large: int
    dropped_spool_full: int
    failed: Mapping[str, int]
    spool_records: int
    spool_bytes: int
    in_flight: int
    in_flight_bytes: int
    connected: bool


class KafkaSink:
    """Publishes :class:`Record` s to Kafka at least once, in order per key, spooling to disk
    while the broker is away.

    Architecture: ``publish`` runs on the caller's thread and hands the record to
    kafka-python's producer, which appends it to a per-partition batch in its accumulator
    (``linger_ms``, ``batch_size``, lz4) and returns a future at once; the producer's sender
    thread ships ready batches, idempotently and with ``acks=all``, retrying by itself until
    ``delivery_timeout_ms``, and resolves each future when the broker acknowledges it (or
    gives up), calling the sink's callbacks on the sender thread. Those callbacks count the
    delivery, or, for a retriable failure (broker unreachable), write the record to the
    :class:`~monitor.delivery.spool.Spool` under its publish sequence number; from then on
    ``publish`` writes straight to the spool too, so that nothing overtakes what is already
    there, and a replay thread (which also reconnects when the broker was never reached)
    sends the spool in sequence order and deletes each record only once it is acknowledged,
    until the spool is empty and ``publish`` goes direct again. Memory is bounded by
    ``max_in_flight_bytes`` (records handed to the producer and not yet acknowledged: past it,
    records are spooled) plus one replay batch; the spool is bounded on disk by its limits.

    Args:
        bootstrap: a :class:`Bootstrap` or a bootstrap string (SASL/TLS included).
        spool_dir: the spool's directory; a later sink on it replays what is left.
        config: batching, timeouts, limits; see :class:`KafkaSinkConfig`.

    Raises:
        ValueError: a setting that would turn idempotence off or is inconsistent (raised
            by :class:`KafkaSinkConfig` before anything connects).

    Example::

        sink = KafkaSink("broker:9092", Path("/var/lib/fqm/spool"))
        sink.publish(Record("fqm.events", b"cam-1", b'{"kind": "face"}', (("id", b"1"),)))
        sink.close(timeout_s=10)
    """

    def __init__(
        self,
        bootstrap: Bootstrap | str,
        spool_dir: Path,
        config: KafkaSinkConfig | None = None,
    ) -> None:
        self.config = config or KafkaSinkConfig()
        self._bootstrap = parse_bootstrap(bootstrap) if isinstance(bootstrap, str) else bootstrap
        self._spool = Spool(spool_dir, self.config.spool)
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._seq = self._spool.max_seq + 1
        self._in_flight: dict[int, Record] = {}
        self._in_flight_bytes = 0
        self._spooling = len(self._spool) > 0
        # kafka-python 3.0 makes any non-retriable produce error (a record over the broker's
        # limit, say) fatal for the idempotent producer: every later batch fails with the same
        # error. So such a failure spools the record, the replay thread builds a new
        # producer, and records up to _isolate_below are re-sent one at a time, so that only
        # the record that fails on its own is counted as failed.
        self._producer_broken = False
        self._isolate_below = -1
        self._spooling_since = time.monotonic()
        self._counts: Counter[str] = Counter()
        self._failed: Counter[str] = Counter()
        self._callback_error: BaseException | None = None
        self._stop_requested = False
        self._closed = False
        self._stop = threading.Event()
        self._producer: KafkaProducer | None = None
        if not self._connect():
            self._spooling = True
        self._replayer = threading.Thread(
            target=self._replay_loop, name="fqm-kafka-replay", daemon=True
        )
        self._replayer.start()

    # -- the Sink protocol ------------------------------------------------------------

    def publish(self, record: Record) -> None:
        """Hand ``record`` over for delivery; returns at once (or within ``max_block_ms``
        for a topic's first record).

        The record is then delivered, or spooled, or counted in :attr:`SinkStats.failed`
        with its reason (too large, spool full), and logged; never dropped silently.

        Raises:
            SinkClosedError: after :meth:`close` or :meth:`request_stop`.
        """
        if self._stop_requested or self._closed:
            raise SinkClosedError("the Kafka sink is closed (or stopping); publish refused")
        if record.size > self.config.max_request_size:
            with self._lock:
                self._counts["published"] += 1
                self._count_too_large(record, f"max_request_size={self.config.max_request_size}")
            return
        with self._lock:
            seq = self._seq
            self._seq += 1
            self._counts["published"] += 1
            producer = self._producer
            if (
                self._spooling
                or producer is None
                or self._in_flight_bytes + record.size > self.config.max_in_flight_bytes
            ):
                self._spool_locked([(seq, record)])
                return
            self._in_flight[seq] = record
            self._in_flight_bytes += record.size
        # Outside the lock: send() can wait for metadata, which the sender thread fetches
        # while it may be waiting for this lock in a callback.
        try:
            future = producer.send(
                record.topic, value=record.value, key=record.key, headers=list(record.headers)
            )
        except Exception as exc:
            if _spoolable(exc):  # e.g. no metadata within max_block_ms: broker away
                self._on_failed(seq, exc)
                return
            with self._settled:
                if self._in_flight.pop(seq, None) is not None:
                    self._in_flight_bytes -= record.size
                if isinstance(exc, _TOO_LARGE):  # kafka-python's own check, before sending
                    self._count_too_large(record, str(exc))
                else:
                    self._failed[type(exc).__name__] += 1
                self._settled.notify_all()
            if not isinstance(exc, kafka_errors.KafkaError):
                raise  # a bad record (TypeError, ValueError): the caller's bug
            log.error("record for topic %s refused by the producer: %s", record.topic, exc)
            return
        future.add_callback(self._on_delivered, seq)
        future.add_errback(self._on_failed, seq)

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every record published so far is acknowledged, spooled or counted as
        failed; False if ``timeout_s`` passed first.

        Raises:
            RuntimeError: a delivery callback raised (chained), so it is never swallowed.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._settled:
            while self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._settled.wait(remaining if remaining is not None else 1.0)
            done = not self._in_flight
        self._raise_callback_error()
        return done

    def close(self, timeout_s: float | None = None) -> None:
        """Flush for up to ``timeout_s``, then persist everything not yet acknowledged to the
        spool, and release the producer and the spool. Idempotent.

        Whatever ``publish`` accepted is then in Kafka, in the spool (a later sink on the same
        directory replays it), or counted as failed.
        """
        if self._closed:
            return
        self._stop_requested = True
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            self.flush(timeout_s)
        finally:
            self._stop.set()
            self._replayer.join(None if deadline is None else max(0.5, deadline - time.monotonic()))
            with self._lock:
                leftovers = sorted(self._in_flight.items())
                self._in_flight.clear()
                self._in_flight_bytes = 0
                if leftovers:
                    log.warning(
                        "closing the Kafka sink: %d records not acknowledged in time go to the "
                        "spool %s",
                        len(leftovers),
                        self._spool.path,
                    )
                    self._spool_locked(leftovers)
                self._closed = True
                producer, self._producer = self._producer, None
            if producer is not None:
                _close_producer(producer, 0.0 if leftovers else 1.0)
            self._spool.close()

    # -- extras -----------------------------------------------------------------------

    def request_stop(self) -> None:
        """Refuse further ``publish`` calls; safe to call from a signal handler (it takes no
        lock and does no I/O). The service's loop then sees :attr:`stop_requested` (or gets
        :class:`SinkClosedError`) and calls :meth:`close`."""
        self._stop_requested = True

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def stats(self) -> SinkStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            c = self._counts
            return SinkStats(
                published=c["published"],
                delivered=c["delivered"],
                replayed=c["replayed"],
                spooled=c["spooled"],
                too_large=self._failed["too_large"],
                dropped_spool_full=self._failed["spool_full"],
                failed=dict(self._failed),
                spool_records=len(self._spool),
                spool_bytes=self._spool.size_bytes,
                in_flight=len(self._in_flight),
                in_flight_bytes=self._in_flight_bytes,
                connected=self._producer is not None,
            )

    def __enter__(self) -> KafkaSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close(timeout_s=self.config.delivery_timeout_ms / 1000)

    # -- callbacks (sender thread) ----------------------------------------------------

    def _on_delivered(self, seq: int, _metadata: object) -> None:
        try:
            with self._settled:
                record = self._in_flight.pop(seq, None)
                if record is None:  # already persisted by close()
                    return
                self._in_flight_bytes -= record.size
                self._counts["delivered"] += 1
                self._settled.notify_all()
        except BaseException as exc:
            self._remember_callback_error(exc)

    def _on_failed(self, seq: int, exc: BaseException) -> None:
        try:
            with self._settled:
                record = self._in_flight.pop(seq, None)
                if record is None:
                    return
                self._in_flight_bytes -= record.size
                if _spoolable(exc):
                    if not self._spooling:
                        log.warning(
                            "Kafka delivery failed (%s: %s); spooling until the broker is back",
                            type(exc).__name__,
                            exc,
                        )
                else:
                    if not self._producer_broken:
                        log.warning(
                            "the Kafka producer failed for good (%s: %s); rebuilding it and "
                            "re-sending the records one at a time to find the one at fault",
                            type(exc).__name__,
                            exc,
                        )
                    self._producer_broken = True
                    self._isolate_below = max(self._isolate_below, self._seq)
                self._spool_locked([(seq, record)])
                self._settled.notify_all()
        except BaseException as err:
            self._remember_callback_error(err)

    def _remember_callback_error(self, exc: BaseException) -> None:
        log.exception("a Kafka delivery callback raised; flush() and close() will re-raise it")
        if self._callback_error is None:
            self._callback_error = exc

    def _raise_callback_error(self) -> None:
        if self._callback_error is not None:
            raise RuntimeError("a Kafka delivery callback raised") from self._callback_error

    # -- spool and replay -------------------------------------------------------------

    def _spool_locked(self, items: list[tuple[int, Record]]) -> None:
        """Spool ``items`` (lock held); from now on publish spools too, until drained."""
        if not self._spooling:
            self._spooling_since = time.monotonic()
        self._spooling = True
        stored = self._spool.append_many(items)
        self._counts["spooled"] += stored
        for _seq, record in items[stored:]:
            self._failed["spool_full"] += 1
            log.error(
                "spool %s is full (%d records, %d bytes; limits %s): a %d-byte record for "
                "topic %s is dropped",
                self._spool.path,
                len(self._spool),
                self._spool.size_bytes,
                self._spool.limits,
                record.size,
                record.topic,
            )

    def _count_too_large(self, record: Record, why: str) -> None:
        self._failed["too_large"] += 1
        log.error(
            "record of %d bytes for topic %s is too large (%s); counted as too_large, not "
            "retried. Raise the topic's max.message.bytes and the sink's max_request_size, "
            "or send smaller records",
            record.size,
            record.topic,
            why,
        )

    def _connect(self) -> bool:
        # A TCP probe first: a refused port is known at once, and each failed KafkaProducer
        # construction leaves an I/O thread behind in kafka-python 3.0.
        try:
            check_reachable(self._bootstrap, self.config.bootstrap_timeout_ms / 1000)
        except ConnectionError as exc:
            if not self._spooling:
                log.warning("%s; spooling to %s until it is", exc, self._spool.path)
            return False
        try:
            self._producer = KafkaProducer(**self.config.producer_kwargs(self._bootstrap))
        except kafka_errors.KafkaConfigurationError as exc:
            raise ValueError(f"kafka-python refused the producer settings: {exc}") from exc
        except kafka_errors.KafkaError as exc:
            log.warning(
                "Kafka at %s not reachable (%s); spooling to %s until it is",
                self._bootstrap,
                type(exc).__name__,
                self._spool.path,
            )
            return False
        return True

    def _replay_loop(self) -> None:
        while not self._stop.is_set():
            if self._producer is None and not self._connect():
                self._stop.wait(self.config.retry_interval_s)
                continue
            broken = None
            with self._lock:
                ready = self._spooling and not self._in_flight
                # kafka-python's sender stops expiring batches while it waits for a producer
                # id from an absent broker: records can stay in flight past the delivery
                # timeout. Rebuild the producer then; its aborted records go to the spool.
                stuck = (
                    self._spooling
                    and self._in_flight
                    and time.monotonic() - self._spooling_since
                    > 2 * self.config.delivery_timeout_ms / 1000
                )
                if stuck:
                    log.warning(
                        "%d records still in flight %.0f s into an outage; rebuilding the "
                        "Kafka producer",
                        len(self._in_flight),
                        time.monotonic() - self._spooling_since,
                    )
                    self._spooling_since = time.monotonic()
                if (ready and self._producer_broken) or stuck:
                    broken, self._producer, self._producer_broken = self._producer, None, False
                elif ready and len(self._spool) == 0:
                    self._spooling = False  # drained: publish goes direct again
                    ready = False
            if broken is not None:
                _close_producer(broken, 0.0)
                continue
            if not ready:
                self._stop.wait(0.05)
                continue
            if not self._replay_once():
                self._stop.wait(self.config.retry_interval_s)

    def _replay_once(self) -> bool:
        """Send one batch from the spool; retire what was acknowledged. False on a failure
        that calls for a pause (broker still away)."""
        producer = self._producer
        assert producer is not None
        batch = self._spool.peek(self.config.replay_batch)
        if not batch:
            return True
        isolated = batch[0][0] < self._isolate_below
        if isolated:
            batch = batch[:1]
        outcomes: dict[int, BaseException | None] = {}
        all_done = threading.Event()
        expected = [len(batch)]  # shrinks if send() raises part-way

        def done(seq: int, result: object) -> None:
            with self._lock:
                outcomes[seq] = result if isinstance(result, BaseException) else None
                if len(outcomes) >= expected[0]:
                    all_done.set()

        for sent, (seq, record) in enumerate(batch):
            try:
                future = producer.send(
                    record.topic, value=record.value, key=record.key, headers=list(record.headers)
                )
            except Exception as exc:
                # ``sent`` futures are out, plus this failure: wait for those
                with self._lock:
                    outcomes[seq] = exc
                    expected[0] = sent + 1
                    if len(outcomes) >= expected[0]:
                        all_done.set()
                break
            future.add_both(done, seq)
        wait_until = time.monotonic() + self.config.delivery_timeout_ms / 1000 + 5.0
        while not all_done.wait(0.1):
            if self._stop.is_set() or time.monotonic() > wait_until:
                return True  # left in the spool; replayed (perhaps again) later
        retire, pause = [], False
        replayed = 0
        with self._lock:
            results = dict(outcomes)
        for seq, record in batch:
            if seq not in results:
                break
            exc = results[seq]
            if exc is None:
                retire.append(seq)
                replayed += 1
            elif _spoolable(exc):
                pause = True
            elif not isolated:  # the producer is dead: find the culprit one at a time
                with self._lock:
                    self._producer_broken = True
                    self._isolate_below = max(self._isolate_below, batch[-1][0] + 1)
            else:  # failed on its own: this record is at fault
                retire.append(seq)
                with self._lock:
                    self._producer_broken = True  # kafka-python made the producer fatal
                    if isinstance(exc, _TOO_LARGE):
                        self._count_too_large(record, f"the broker refused it: {exc}")
                    else:
                        self._failed[type(exc).__name__] += 1
                        log.error(
                            "record for topic %s failed for good and is dropped: %s: %s",
                            record.topic,
                            type(exc).__name__,
                            exc,
                        )
        if self._stop.is_set() and self._closed:
            return True
        self._spool.remove(retire)
        with self._lock:
            self._counts["replayed"] += replayed
            self._counts["delivered"] += replayed
        return not pause


def _spoolable(exc: BaseException) -> bool:
    return bool(getattr(exc, "retriable", False)) or isinstance(exc, _SPOOLABLE)


def _close_producer(producer: KafkaProducer, timeout_s: float) -> None:
    """Close the producer without raising. kafka-python's close() flushes first and raises
    KafkaTimeoutError from that flush when batches are still pending, leaving its sender
    thread running; the records are in our spool by then, so stop the sender outright."""
    try:
        producer.close(timeout=timeout_s)
    except kafka_errors.KafkaError as exc:
        log.info("Kafka producer did not close cleanly (%s); force-closing it", exc)
        sender = getattr(producer, "_sender", None)  # no public force-close in kafka-python
        if sender is not None:
            sender.force_close()
            sender.join(5.0)


def install_sigterm_handler(sink: KafkaSink) -> None:
    """Make SIGTERM (and SIGINT) call :meth:`KafkaSink.request_stop`.

    Call from the main thread. The handler only sets a flag (no locks, no I/O, so it cannot
    deadlock with a ``publish`` it interrupts); the service's loop must then leave and call
    ``sink.close(timeout_s)``, which persists whatever is not acknowledged to the spool.
    """

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping the Kafka sink", signum)
        sink.request_stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create.

    Attributes:
        name: the topic name.
        partitions: partitions; keys (cameras) spread over them.
        replication_factor: copies of each partition; 3 for production (with
            ``min.insync.replicas=2`` on the broker, acks=all then survives one broker loss).
        retention_ms: how long the broker keeps records; None for the broker's default.
        configs: further topic configs (``max.message.bytes``, say).
    """

    name: str
    partitions: int = 6
    replication_factor: int = 3
    retention_ms: int | None = 7 * 24 * 3600 * 1000
    configs: Mapping[str, str] = field(default_factory=dict)

    def create_spec(self) -> dict[str, Any]:
        configs = dict(self.configs)
        if self.retention_ms is not None:
            configs["retention.ms"] = str(self.retention_ms)
        return {
            "num_partitions": self.partitions,
            "replication_factor": self.replication_factor,
            "configs": configs,
        }


def ensure_topics(
    bootstrap: Bootstrap | str, topics: Iterable[TopicSpec], timeout_s: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet (existing ones are left as they are).

    Returns:
        The names of the topics created by this call.

    Example::

        ensure_topics("broker:9092", [TopicSpec("fqm.events", partitions=12)])
    """
    bootstrap = parse_bootstrap(bootstrap) if isinstance(bootstrap, str) else bootstrap
    timeout_ms = int(timeout_s * 1000)
    admin = KafkaAdminClient(
        **bootstrap.client_kwargs(),
        client_id="fqm-ensure-topics",
        bootstrap_timeout_ms=timeout_ms,
        request_timeout_ms=timeout_ms,
    )
    try:
        existing = set(admin.list_topics())
        wanted = {t.name: t.create_spec() for t in topics if t.name not in existing}
        created = []
        for name, spec in wanted.items():
            try:
                admin.create_topics({name: spec}, timeout_ms=timeout_ms, wait_for_metadata=True)
            except kafka_errors.TopicAlreadyExistsError:
                continue  # created meanwhile by another instance
            created.append(name)
        return created
    finally:
        admin.close()
