"""The embedded sink: the same records as JSONL files per stream, plus JPEG crop files.

With no broker configured, fqm writes what it would have published to a folder::

    OUT/<stream>/<topic>.jsonl          one JSON event per line: exactly the record's value
    OUT/<stream>/<topic>.1.jsonl ...    rotated files, newest first (.1 is the newest)
    OUT/<stream>/crops/<crop_id>.jpg    one file per inline crop record

``<stream>`` is the record key (the stream id) made safe as a directory name by
:func:`stream_dir_name`. See :class:`JsonlSink` for the write and crash guarantees and
docs/delivery.md for the layout and rotation.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import re
import tempfile
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from monitor.delivery.record import Record, SinkClosedError
from monitor.events.codec import (
    HEADER_CONTENT_TYPE,
    HEADER_CROP_ID,
    JPEG_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
)

log = logging.getLogger(__name__)

#: The lock file that keeps a second sink out of the same folder.
LOCK_NAME = ".fqm-jsonl.lock"
#: The crops folder inside each stream's folder.
CROPS_DIR = "crops"
#: Suffix of every JSONL file.
SUFFIX = ".jsonl"

# Characters kept as they are in a stream's directory name; every other byte of the UTF-8
# stream id is written as %XX (so the mapping is reversible and never yields a separator).
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.")
# Longest directory name kept reversible; longer ones end in a hash (NAME_MAX is 255 bytes).
_MAX_DIR_NAME = 200
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def stream_dir_name(stream_id: str) -> str:
    """A directory name for ``stream_id``: never a path separator, ``.``, ``..`` or hidden.

    Letters, digits, ``_``, ``-`` and ``.`` stay as they are, except a leading ``.``; every
    other UTF-8 byte becomes ``%XX``. Names over 200 bytes are cut and end in ``~`` and 16
    hex digits of the id's SHA-256, so they stay unique and under the file system's limit.

    Raises:
        ValueError: an empty stream id.

    Example:
        >>> stream_dir_name("../etc/passwd")
        '%2E.%2Fetc%2Fpasswd'
        >>> stream_dir_name("lobby cam 1")
        'lobby%20cam%201'
    """
    if not stream_id:
        raise ValueError("an empty stream id has no directory")
    raw = stream_id.encode()
    name = "".join(
        chr(b) if b in _SAFE and not (i == 0 and b == ord(".")) else f"%{b:02X}"
        for i, b in enumerate(raw)
    )
    if len(name) > _MAX_DIR_NAME:
        digest = hashlib.sha256(raw).hexdigest()[:16]
        name = f"{name[: _MAX_DIR_NAME - 17].rstrip('%')}~{digest}"
    return name


def rotated_path(current: Path, n: int) -> Path:
    """The ``n``-th rotated file of ``current`` (``fqm.faces.jsonl`` -> ``fqm.faces.1.jsonl``);
    ``n=0`` is ``current`` itself."""
    if n == 0:
        return current
    return current.with_name(f"{current.name.removesuffix(SUFFIX)}.{n}{SUFFIX}")


@dataclass(frozen=True)
class JsonlSinkConfig:
    """Rotation, retention and durability of the JSONL sink.

    Attributes:
        max_file_bytes: a topic's current file is rotated before a line would take it past
            this size (a single longer line still goes into a file of its own).
        keep_rotated: rotated files kept per stream and topic (``.1`` newest ... ``.N``
            oldest); the oldest is deleted at the next rotation. 0 keeps none. A topic's
            disk use is therefore at most ``(keep_rotated + 1) * max_file_bytes``, plus one line.
        max_crops_per_stream: crop files kept per stream; past it the oldest (by write
            order, and by modification time for files left by an earlier run) is deleted.
        max_open_files: JSONL files kept open at once (least recently written closed first):
            bounds file descriptors with many streams.
        fsync: ``flush`` fsyncs every file written since the last flush, and crop files are
            fsynced before they are renamed into place (survives an OS crash, costs I/O).
        crops_topic: records on this topic without a content-type header are crops too.
    """

    max_file_bytes: int = 64 * 1024 * 1024
    keep_rotated: int = 5
    max_crops_per_stream: int = 10_000
    max_open_files: int = 64
    fsync: bool = False
    crops_topic: str = "fqm.crops"

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_crops_per_stream", "max_open_files"):
            if getattr(self, name) < 1:
                raise ValueError(f"JsonlSinkConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.keep_rotated < 0:
            raise ValueError(f"JsonlSinkConfig.keep_rotated must be >= 0, got {self.keep_rotated}")


@dataclass(frozen=True)
class JsonlSinkStats:
    """A snapshot of the JSONL sink's counters (since it was created).

    Attributes:
        published: records accepted by ``publish``.
        written: JSONL lines written.
        crops: crop files written.
        bytes: bytes written (lines with their newline, and crop files).
        rotated: JSONL files rotated.
        crops_deleted: crop files deleted to keep ``max_crops_per_stream``.
        failed: records not written, by reason (``no_key``, ``bad_topic``,
            ``newline_in_value``, ``bad_crop_id``, ``content_type``, or an OS error's name).
        open_files: JSONL files open now.
    """

    published: int
    written: int
    crops: int
    bytes: int
    rotated: int
    crops_deleted: int
    failed: Mapping[str, int]
    open_files: int


class _File:
    """One open JSONL file: a raw O_APPEND descriptor and its size."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.size = os.fstat(self.fd).st_size
        self.dirty = False

    def close(self) -> None:
        os.close(self.fd)


class JsonlSink:
    """Writes :class:`Record` s as JSONL files per stream and topic, and crops as JPEG files.

    Architecture: ``publish`` runs on the caller's thread, under one lock. An event record
    (``content-type: application/json``, or no content type) becomes one line of
    ``OUT/<stream>/<topic>.jsonl``, written with a single ``write(2)`` on an ``O_APPEND``
    descriptor (no user-space buffer), so it is in the OS's page cache, visible to readers,
    when ``publish`` returns: ``flush`` has nothing to push and only fsyncs when
    ``config.fsync`` is set. A crop record (``content-type: image/jpeg``, or the crops topic)
    is written to a temporary file and renamed to ``OUT/<stream>/crops/<crop_id>.jpg``, so a
    reader sees the whole JPEG or none. Before a line would take a file past
    ``max_file_bytes`` the file is rotated (``.1`` newest, ``.N`` oldest, the oldest beyond
    ``keep_rotated`` deleted). Memory is bounded by ``max_open_files`` descriptors and the
    crop ids remembered per stream (``max_crops_per_stream``); nothing is queued.

    Crash guarantee: a record ``publish`` returned for survives the process being killed
    (it is in the page cache); with ``fsync=True`` one covered by a later ``flush`` also
    survives an OS crash. A reader may see the last line being written without its newline
    yet (a line is complete only with its ``\\n``: fqm's reader waits for it), and an OS
    crash may leave a torn last line: a sink opening a file cuts it off (logged).

    Args:
        root: the output folder (created). One sink per folder: a second one raises.
        config: rotation, retention, durability; see :class:`JsonlSinkConfig`.

    Raises:
        BlockingIOError: another sink (in any process) writes to ``root``.

    Example::

        sink = JsonlSink(Path("out"))
        for record in to_records(event):
            sink.publish(record)
        sink.close()
    """

    def __init__(self, root: Path, config: JsonlSinkConfig | None = None) -> None:
        self.config = config or JsonlSinkConfig()
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._lock_fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise BlockingIOError(
                errno.EWOULDBLOCK,
                "another fqm JSONL sink is writing to this folder; give each sink its own",
                str(self.root),
            ) from None
        self._files: OrderedDict[Path, _File] = OrderedDict()
        self._repaired: set[Path] = set()
        self._dirs: set[Path] = set()
        self._crops: dict[Path, OrderedDict[str, None]] = {}
        self._counts: Counter[str] = Counter()
        self._failed: Counter[str] = Counter()
        self._closed = False

    # -- the Sink protocol ------------------------------------------------------------

    def publish(self, record: Record) -> None:
        """Write ``record`` (a line, or a crop file); returns once it is written.

        A record that cannot be written is counted in :attr:`JsonlSinkStats.failed` with its
        reason and logged; never dropped silently.

        Raises:
            SinkClosedError: after :meth:`close`.
        """
        with self._lock:
            if self._closed:
                raise SinkClosedError("the JSONL sink is closed; publish refused")
            self._counts["published"] += 1
            why = self._check(record)
            if why is not None:
                self._fail(why, record)
                return
            stream = self.root / stream_dir_name(record.key.decode("utf-8", "replace"))
            try:
                if self._is_crop(record):
                    self._write_crop(stream, record)
                else:
                    self._write_line(stream / f"{record.topic}{SUFFIX}", record.value)
            except OSError as exc:
                reason = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
                self._fail(reason, record, str(exc))

    def flush(self, timeout_s: float | None = None) -> bool:
        """Every record published so far is written when ``publish`` returns; with
        ``config.fsync`` this fsyncs the files written since the last flush. Always True."""
        with self._lock:
            if self.config.fsync:
                for f in self._files.values():
                    if f.dirty:
                        os.fsync(f.fd)
                        f.dirty = False
        return True

    def close(self, timeout_s: float | None = None) -> None:
        """Flush, close every file and release the folder. Idempotent."""
        if self._closed:
            return
        self.flush(timeout_s)
        with self._lock:
            self._closed = True
            for f in self._files.values():
                f.close()
            self._files.clear()
            os.close(self._lock_fd)

    # -- extras -----------------------------------------------------------------------

    def stats(self) -> JsonlSinkStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            c = self._counts
            return JsonlSinkStats(
                published=c["published"],
                written=c["written"],
                crops=c["crops"],
                bytes=c["bytes"],
                rotated=c["rotated"],
                crops_deleted=c["crops_deleted"],
                failed=dict(self._failed),
                open_files=len(self._files),
            )

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals (lock held) ---------------------------------------------------------

    def _check(self, record: Record) -> str | None:
        if not record.key:
            return "no_key"
        if not _TOPIC.match(record.topic) or record.topic in (".", ".."):
            return "bad_topic"
        if self._is_crop(record):
            return None
        content_type = self._content_type(record)
        if content_type is not None and content_type != JSON_CONTENT_TYPE.encode():
            return "content_type"
        if b"\n" in record.value or b"\r" in record.value:
            return "newline_in_value"
        return None

    @staticmethod
    def _content_type(record: Record) -> bytes | None:
        return next((v for k, v in record.headers if k == HEADER_CONTENT_TYPE), None)

    def _is_crop(self, record: Record) -> bool:
        content_type = self._content_type(record)
        if content_type is None:
            return record.topic == self.config.crops_topic
        return content_type == JPEG_CONTENT_TYPE.encode()

    def _fail(self, reason: str, record: Record, detail: str = "") -> None:
        self._failed[reason] += 1
        log.error(
            "JSONL sink: a %d-byte record for topic %s (key %r) is not written: %s%s",
            record.size,
            record.topic,
            record.key[:64],
            reason,
            f" ({detail})" if detail else "",
        )

    def _mkdir(self, path: Path) -> None:
        if path not in self._dirs:
            path.mkdir(parents=True, exist_ok=True)
            self._dirs.add(path)

    def _open(self, path: Path) -> _File:
        f = self._files.get(path)
        if f is not None:
            self._files.move_to_end(path)
            return f
        self._mkdir(path.parent)
        if path not in self._repaired:
            _cut_torn_line(path)
            self._repaired.add(path)
        f = _File(path)
        self._files[path] = f
        while len(self._files) > self.config.max_open_files:
            _, old = self._files.popitem(last=False)
            if old.dirty and self.config.fsync:
                os.fsync(old.fd)
            old.close()
        return f

    def _write_line(self, path: Path, value: bytes) -> None:
        line = value + b"\n"
        f = self._open(path)
        if f.size > 0 and f.size + len(line) > self.config.max_file_bytes:
            f = self._rotate(f)
        _write_all(f, line)
        f.dirty = True
        self._counts["written"] += 1
        self._counts["bytes"] += len(line)

    def _rotate(self, f: _File) -> _File:
        path = f.path
        if self.config.fsync and f.dirty:
            os.fsync(f.fd)
        f.close()
        del self._files[path]
        keep = self.config.keep_rotated
        if keep == 0:
            path.unlink(missing_ok=True)
        else:
            rotated_path(path, keep).unlink(missing_ok=True)
            for n in range(keep - 1, -1, -1):
                source = rotated_path(path, n)
                if source.exists():
                    os.replace(source, rotated_path(path, n + 1))
        self._counts["rotated"] += 1
        return self._open(path)

    def _write_crop(self, stream: Path, record: Record) -> None:
        raw = next((v for k, v in record.headers if k == HEADER_CROP_ID), None)
        try:
            crop_id = str(UUID(raw.decode("ascii"))) if raw is not None else None
        except (ValueError, UnicodeDecodeError):
            crop_id = None
        if crop_id is None:
            self._fail("bad_crop_id", record)
            return
        folder = stream / CROPS_DIR
        self._mkdir(folder)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".jpg")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(record.value)
                if self.config.fsync:
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(tmp, folder / f"{crop_id}.jpg")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._counts["crops"] += 1
        self._counts["bytes"] += len(record.value)
        self._remember_crop(folder, crop_id)

    def _remember_crop(self, folder: Path, crop_id: str) -> None:
        known = self._crops.get(folder)
        if known is None:  # first crop of this stream in this run: adopt what is there
            existing = sorted(folder.glob("*.jpg"), key=lambda p: p.stat().st_mtime)
            known = self._crops[folder] = OrderedDict((p.stem, None) for p in existing)
        known[crop_id] = None
        known.move_to_end(crop_id)
        while len(known) > self.config.max_crops_per_stream:
            old, _ = known.popitem(last=False)
            (folder / f"{old}.jpg").unlink(missing_ok=True)
            self._counts["crops_deleted"] += 1


def _write_all(f: _File, data: bytes) -> None:
    """One ``write(2)`` in the normal case; on a short write, the rest. On failure the
    file is cut back to its size before, so no partial line stays behind."""
    view = memoryview(data)
    try:
        while view:
            n = os.write(f.fd, view)
            view = view[n:]
    except OSError:
        try:
            os.ftruncate(f.fd, f.size)
        except OSError:
            log.exception("could not cut a partly written line from %s", f.path)
        raise
    f.size += len(data)


def _cut_torn_line(path: Path) -> None:
    """Cut a last line without its newline (left by an OS crash) from ``path``."""
    try:
        with open(path, "r+b") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            end = size
            while end > 0:
                start = max(0, end - 64 * 1024)
                f.seek(start)
                chunk = f.read(end - start)
                newline = chunk.rfind(b"\n")
                if newline >= 0:
                    end = start + newline + 1
                    break
                end = start
            f.truncate(end)
            log.warning("%s ended in a torn line; cut %d bytes", path, size - end)
    except FileNotFoundError:
        return
