"""Video files decoded by PyAV (FFmpeg), frame by frame, into ``Frame`` objects."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import av

from pipelines.errors import SourceDecodeError, SourceOpenError
from pipelines.frame import Frame


@dataclass
class SourceStats:
    """Counters a source keeps while it is read."""

    frames: int = 0
    decode_seconds: float = 0.0


class AvFileSource:
    """Decodes the first video stream of a file, in order, one ``Frame`` per picture.

    Frame threading (``thread_type="AUTO"``) lets FFmpeg decode several frames at once, about
    twice as fast as its default slice threading on H.264.

    Example:
        >>> with AvFileSource("clip.mp4") as source:
        ...     for frame in source:
        ...         print(frame.index, frame.pts, frame.image.shape)
    """

    def __init__(self, path: str | Path, stream_id: str | None = None) -> None:
        self.path = Path(path)
        self.stream_id = stream_id or self.path.stem
        self.stats = SourceStats()
        self._container: av.container.InputContainer | None = None

    def open(self) -> None:
        if not self.path.is_file():
            raise SourceOpenError(f"{self.path}: no such file")
        try:
            container = av.open(str(self.path), mode="r")
        except av.error.FFmpegError as exc:
            raise SourceOpenError(f"{self.path}: not a readable video ({exc})") from exc
        if not container.streams.video:
            container.close()
            raise SourceOpenError(f"{self.path}: the file has no video stream")
        container.streams.video[0].thread_type = "AUTO"
        self._container = container

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> AvFileSource:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        if self._container is None:
            raise RuntimeError("open the source (or use it as a context manager) before reading")
        stream = self._container.streams.video[0]
        decoded = self._container.decode(stream)
        while True:
            t0 = time.perf_counter()
            try:
                picture = next(decoded)
            except StopIteration:
                return
            except av.error.FFmpegError as exc:
                raise SourceDecodeError(
                    f"{self.path}: decoding failed after {self.stats.frames} frames ({exc})"
                ) from exc
            image = picture.to_ndarray(format="rgb24")
            self.stats.decode_seconds += time.perf_counter() - t0
            pts = float(picture.time) if picture.time is not None else None
            yield Frame(self.stream_id, self.stats.frames, pts, time.time(), image)
            self.stats.frames += 1
