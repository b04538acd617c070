"""A bounded, crash-safe, ordered on-disk queue of records: the Kafka sink's outage buffer.

One SQLite database (``spool.sqlite3`` in the spool directory) in WAL mode, one row per
record keyed by the sink's sequence number, so replay order is the publish order even when
a record that failed in flight is spooled after newer ones. Rows are deleted only once the
broker has acknowledged them (at-least-once: a crash re-delivers, never loses). Why SQLite
rather than segment files: see docs/delivery.md.

When full (``max_bytes`` or ``max_records``), :meth:`Spool.append` refuses the new record
and returns False; what is already on disk is never dropped to make room.
"""

from __future__ import annotations

import sqlite3
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

from monitor.delivery.record import Record

SPOOL_FILE = "spool.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    headers BLOB NOT NULL,
    size INTEGER NOT NULL
)
"""

_LENGTH = struct.Struct(">I")


def encode_headers(headers: tuple[tuple[str, bytes], ...]) -> bytes:
    """Length-prefixed header pairs (4-byte big-endian lengths), as stored in the spool."""
    parts = []
    for name, value in headers:
        raw = name.encode("utf-8")
        parts += [_LENGTH.pack(len(raw)), raw, _LENGTH.pack(len(value)), value]
    return b"".join(parts)


def decode_headers(blob: bytes) -> tuple[tuple[str, bytes], ...]:
    """The inverse of :func:`encode_headers`."""
    headers, pos = [], 0
    while pos < len(blob):
        (n,) = _LENGTH.unpack_from(blob, pos)
        name = blob[pos + 4 : pos + 4 + n].decode("utf-8")
        pos += 4 + n
        (m,) = _LENGTH.unpack_from(blob, pos)
        headers.append((name, bytes(blob[pos + 4 : pos + 4 + m])))
        pos += 4 + m
    return tuple(headers)


@dataclass(frozen=True)
class SpoolLimits:
    """How much the spool holds before it refuses new records.

    Attributes:
        max_bytes: sum of :attr:`Record.size` over spooled records (payload bytes; the
            database file is larger by SQLite's page overhead, roughly 10-20 %).
        max_records: number of spooled records; None for no count limit.
    """

    max_bytes: int = 1 << 30
    max_records: int | None = None

    def __post_init__(self) -> None:
        if self.max_bytes <= 0:
            raise ValueError(f"spool max_bytes must be positive, got {self.max_bytes}")
        if self.max_records is not None and self.max_records <= 0:
            raise ValueError(f"spool max_records must be positive or None, got {self.max_records}")


class Spool:
    """Records waiting for the broker, in sequence order, on disk. Thread-safe.

    Args:
        directory: where ``spool.sqlite3`` lives (created if missing). A later spool on the
            same directory sees every record appended and not yet removed.
        limits: when to refuse new records.

    Example::

        spool = Spool(Path("/var/lib/fqm/spool"))
        if not spool.append(seq, record):
            ...  # full: count it
        for seq, record in spool.peek(100):
            ...  # send; then spool.remove([seq]) once acknowledged
    """

    def __init__(self, directory: Path, limits: SpoolLimits | None = None) -> None:
        self.limits = limits or SpoolLimits()
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / SPOOL_FILE
        self._lock = threading.Lock()
        # One connection shared by the caller's thread, the producer's sender thread and the
        # replay thread, serialised by _lock. isolation_level=None: we open transactions
        # ourselves, so a batch is one commit.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        # WAL + synchronous=NORMAL: a commit survives the process being killed (SIGKILL,
        # OOM); only an OS crash or power loss can lose the last commits.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        count, total, last = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(MAX(seq), -1) FROM records"
        ).fetchone()
        self._count: int = count
        self._bytes: int = total
        self._max_seq: int = last

    def __len__(self) -> int:
        return self._count

    @property
    def size_bytes(self) -> int:
        """Sum of :attr:`Record.size` over the spooled records."""
        return self._bytes

    @property
    def max_seq(self) -> int:
        """The highest sequence number ever held by this database (-1 if none)."""
        return self._max_seq

    def has_room(self, record: Record) -> bool:
        limits = self.limits
        if self._bytes + record.size > limits.max_bytes:
            return False
        return limits.max_records is None or self._count < limits.max_records

    def append(self, seq: int, record: Record) -> bool:
        """Store ``record`` under ``seq``; False (nothing stored) when the spool is full.

        Storing a ``seq`` that is already there replaces it (the same record, spooled again).
        """
        return self.append_many([(seq, record)]) == 1

    def append_many(self, items: list[tuple[int, Record]]) -> int:
        """Store records in one commit, in order, until the spool is full; returns how many
        were stored (the first ones)."""
        with self._lock:
            stored = 0
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for seq, record in items:
                    if not self.has_room(record):
                        break
                    replaced = self._db.execute(
                        "SELECT size FROM records WHERE seq = ?", (seq,)
                    ).fetchone()
                    self._db.execute(
                        "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            seq,
                            record.topic,
                            record.key,
                            record.value,
                            encode_headers(record.headers),
                            record.size,
                        ),
                    )
                    if replaced is not None:
                        self._count -= 1
                        self._bytes -= replaced[0]
                    self._count += 1
                    self._bytes += record.size
                    self._max_seq = max(self._max_seq, seq)
                    stored += 1
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._recount()
                raise
            return stored

    def peek(self, limit: int) -> list[tuple[int, Record]]:
        """The ``limit`` oldest records (lowest sequence numbers), without removing them."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, key, value, headers FROM records ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            (seq, Record(topic, bytes(key), bytes(value), decode_headers(headers)))
            for seq, topic, key, value, headers in rows
        ]

    def remove(self, seqs: list[int]) -> None:
        """Retire records (the broker acknowledged them, or they can never be delivered)."""
        if not seqs:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                gone = total = 0
                for seq in seqs:
                    row = self._db.execute(
                        "DELETE FROM records WHERE seq = ? RETURNING size", (seq,)
                    ).fetchone()
                    if row is not None:
                        gone += 1
                        total += row[0]
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._recount()
                raise
            self._count -= gone
            self._bytes -= total

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _recount(self) -> None:
        count, total = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM records"
        ).fetchone()
        self._count, self._bytes = count, total
