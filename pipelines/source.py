"""The ``Source`` interface every backend implements, and the settings they share."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from pipelines.frame import Frame


@dataclass
class SourceStats:
    """Counters a source keeps while it is read (one writer: the thread that reads it).

    Attributes:
        frames: frames yielded.
        skipped: decoded pictures dropped by ``max_fps`` decimation before RGB conversion.
        dropped: frames discarded because the consumer lagged (live queues drop the oldest).
        reconnects: times a supervised source reconnected.
        corrupt_packets: packets the decoder rejected and that were skipped (PyAV; see
            ``av_source.CORRUPT_WINDOW_PACKETS`` for when it gives up). GStreamer's parsers
            drop damaged H.264 silently, so ``GstSource`` leaves it at 0.
        decode_seconds: wall time spent demuxing, decoding and converting.
        decoder: the decoder that ran, e.g. ``"h264"`` (PyAV's codec) or ``"avdec_h264"``
            (GStreamer's element); empty until the source has opened.
        hwaccel: the hardware device type that decoded (``"cuda"``, ...), ``None`` for software.
        hwaccel_note: why decoding is in software although hardware was asked for (no device,
            no hardware support for this codec or profile); empty otherwise.
    """

    frames: int = 0
    skipped: int = 0
    dropped: int = 0
    reconnects: int = 0
    corrupt_packets: int = 0
    decode_seconds: float = 0.0
    decoder: str = ""
    hwaccel: str | None = None
    hwaccel_note: str = ""

    @property
    def decoder_summary(self) -> str:
        """One line for logs and status events, e.g. ``"h264 on cuda"`` or
        ``"h264 in software (cuda: no device)"``; empty before the first picture."""
        if not self.decoder:
            return ""
        if self.hwaccel:
            return f"{self.decoder} on {self.hwaccel}"
        note = f" ({self.hwaccel_note})" if self.hwaccel_note else ""
        return f"{self.decoder} in software{note}"


@dataclass(frozen=True)
class DecodeOptions:
    """What a source does to each picture before it becomes a ``Frame``.

    Attributes:
        max_fps: keep at most this many frames per second of stream time (by pts), dropping
            the rest before the RGB conversion, which costs more than decoding. ``None`` keeps
            every frame.
        max_width, max_height: scale larger pictures down, keeping the aspect ratio, inside the
            same conversion call. ``None`` leaves that dimension unbounded.
    """

    max_fps: float | None = None
    max_width: int | None = None
    max_height: int | None = None

    def __post_init__(self) -> None:
        if self.max_fps is not None and not self.max_fps > 0:
            raise ValueError(f"max_fps must be > 0 or None, got {self.max_fps}")
        for name in ("max_width", "max_height"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise ValueError(f"{name} must be >= 2 or None, got {value}")

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) a ``width`` x ``height`` picture is converted to."""
        scale = 1.0
        if self.max_width is not None:
            scale = min(scale, self.max_width / width)
        if self.max_height is not None:
            scale = min(scale, self.max_height / height)
        if scale >= 1.0:
            return width, height
        # Even sizes keep chroma-subsampled scalers exact; never round to zero.
        return max(2, math.floor(width * scale / 2) * 2), max(2, math.floor(height * scale / 2) * 2)


class FrameDecimator:
    """Decides, by pts, which pictures ``max_fps`` keeps (cheap: no pixels touched)."""

    #: A picture this fraction of a period early still counts as due (pts are rounded).
    EARLY_SLACK = 0.05

    def __init__(self, max_fps: float | None) -> None:
        self._period = 1.0 / max_fps if max_fps else 0.0
        self._next_due: float | None = None

    def keep(self, pts: float | None) -> bool:
        """True when the picture at ``pts`` seconds should be converted and yielded."""
        period = self._period
        if not period or pts is None:
            return True
        due = self._next_due
        # First picture, or a jump in the timeline (seek, wrap, reconnect): restart from here.
        if due is None or pts < due - 2 * period or pts > due + period:
            self._next_due = pts + period
            return True
        if pts >= due - period * self.EARLY_SLACK:
            self._next_due = due + period
            return True
        return False


class Source(ABC):
    """A stream of ``Frame`` objects: open, iterate, close; or use it as a context manager.

    Every backend (PyAV, GStreamer) and wrapper (supervision, buffering) is a ``Source`` so
    that the rest of fqm does not care where frames come from.

    Example:
        >>> with AvSource("clip.mp4") as source:
        ...     for frame in source:
        ...         ...
    """

    stream_id: str
    stats: SourceStats

    @abstractmethod
    def open(self) -> None:
        """Connect or open; raise ``SourceOpenError`` (never hang: backends take a timeout)."""

    @abstractmethod
    def close(self) -> None:
        """Release every resource; safe to call twice and on a source never opened."""

    @abstractmethod
    def frames(self) -> Iterator[Frame]:
        """Yield decoded frames until the end of the stream; raise ``SourceError`` on failure."""

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
