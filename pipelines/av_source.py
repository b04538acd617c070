"""Video decoded by PyAV (FFmpeg): files, RTSP, HTTP(S)/HLS and V4L2 devices."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path

import av
import numpy as np
from av.codec.hwaccel import HWAccel

from pipelines.errors import SourceDecodeError, SourceOpenError, SourceTimeoutError
from pipelines.frame import Frame
from pipelines.hwaccel import available_hwaccels, choose_device, hw_pixel_formats
from pipelines.source import DecodeOptions, FrameDecimator, Source, SourceStats
from pipelines.urls import SourceKind, default_stream_id, mask_url, source_kind

#: Seconds to wait for a network source to answer (connect, RTSP DESCRIBE/SETUP).
DEFAULT_OPEN_TIMEOUT_S = 10.0
#: Seconds a blocking read may wait for data before FFmpeg gives up and we raise.
DEFAULT_READ_TIMEOUT_S = 10.0
#: A file that ends this many pictures (and 1 %) short of its index is called truncated; a
#: picture or two may legitimately go missing to edit lists and decoder delay.
TRUNCATION_SLACK_FRAMES = 2
#: Corrupt-packet policy. A packet the decoder rejects (one of ``CORRUPT_PACKET_ERRORS``) is
#: skipped and counted in ``stats.corrupt_packets``, as the ffmpeg CLI and GStreamer do: one
#: damaged packet is not an outage. The source gives up with ``SourceDecodeError`` only when
#: more than ``MAX_CORRUPT_FRACTION`` of the last ``CORRUPT_WINDOW_PACKETS`` packets were
#: rejected (126 of 250, about 5 s at 25 fps): that is garbage, not damage.
CORRUPT_WINDOW_PACKETS = 250
MAX_CORRUPT_FRACTION = 0.5
#: Per-packet errors from the decoder that mean "this packet is damaged" (FFmpeg's
#: AVERROR_INVALIDDATA). Anything else (no memory, a broken device) still ends the read.
CORRUPT_PACKET_ERRORS: tuple[type[Exception], ...] = (av.error.InvalidDataError,)


class CorruptionWindow:
    """Counts the rejected packets among the last ``window`` and says when too many were.

    Args:
        window: how many of the most recent packets are considered.
        max_fraction: the share of them that may be corrupt before the source gives up.

    Example:
        >>> w = CorruptionWindow(4, 0.5)
        >>> [w.record(c) for c in (True, True, False, True)]
        [False, False, False, True]
    """

    def __init__(
        self, window: int = CORRUPT_WINDOW_PACKETS, max_fraction: float = MAX_CORRUPT_FRACTION
    ) -> None:
        if window < 1 or not 0 <= max_fraction < 1:
            raise ValueError(
                f"need window >= 1 and 0 <= max_fraction < 1, got {window}, {max_fraction}"
            )
        self.window = window
        self.limit = int(window * max_fraction)
        self._recent: deque[bool] = deque(maxlen=window)
        self.corrupt = 0  # rejected packets among the last ``window``

    def record(self, corrupt: bool) -> bool:
        """Note one packet; return True when more than the allowed share was corrupt."""
        if len(self._recent) == self.window:
            self.corrupt -= self._recent[0]
        self._recent.append(corrupt)
        self.corrupt += corrupt
        return self.corrupt > self.limit


class AvSource(Source):
    """Decodes the first video stream of ``location``, in order, one ``Frame`` per picture.

    Frame threading (``thread_type="AUTO"``) lets FFmpeg decode several frames at once, about
    twice as fast as its default slice threading on H.264; FFmpeg releases the GIL while it
    decodes, so several sources can run in threads of one process.

    Network sources get ``timeout=(open, read)`` so a dead camera raises instead of hanging,
    and a live stream that still sends packets but no picture for ``read_timeout_s`` raises
    ``SourceTimeoutError`` too. This class reads once; ``SupervisedSource`` reconnects.

    A packet the decoder rejects as corrupt is skipped and counted in
    ``stats.corrupt_packets`` (the next keyframe repairs the picture, as in the ffmpeg CLI);
    only more than ``MAX_CORRUPT_FRACTION`` of the last ``CORRUPT_WINDOW_PACKETS`` packets
    corrupt raises ``SourceDecodeError``.

    Args:
        location: a path, ``file://``, ``rtsp://``, ``http(s)://`` (HLS too) URL or
            ``/dev/videoN``.
        stream_id: id stamped on frames; defaults to the file stem or host and path.
        options: decimation and maximum size, see ``DecodeOptions``.
        rtsp_transport: ``"tcp"`` (default: survives NAT and lossy Wi-Fi) or ``"udp"``.
        open_timeout_s, read_timeout_s: network timeouts, see the module constants.
        container_options: extra FFmpeg options (e.g. ``{"video_size": "1280x720"}`` for V4L2).
        hwaccel: decode on a hardware device: a type from ``available_hwaccels()`` (``"cuda"``,
            ``"qsv"``, ...) or ``"auto"`` (the first that opens, see ``AUTO_PREFERENCE``).
            ``None`` (default) decodes in software. When the device cannot be opened, or its
            decoder refuses the stream, decoding falls back to software; ``stats.hwaccel``
            then stays ``None`` and ``stats.hwaccel_note`` says why. Pictures are copied back
            to system memory for the RGB conversion.
        hwaccel_device: which device of that type (a CUDA index such as ``"1"``, a DRI node).
        threads: decoder threads; 0 (default) lets FFmpeg use one per core. With many
            streams per core, 1 or 2 per stream avoid oversubscription.

    Example:
        >>> with AvSource("rtsp://user:pw@cam/stream", options=DecodeOptions(max_fps=10)) as s:
        ...     for frame in s:
        ...         print(frame.index, frame.pts, frame.image.shape)
    """

    def __init__(
        self,
        location: str | Path,
        stream_id: str | None = None,
        *,
        options: DecodeOptions | None = None,
        rtsp_transport: str = "tcp",
        open_timeout_s: float = DEFAULT_OPEN_TIMEOUT_S,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        container_options: Mapping[str, str] | None = None,
        hwaccel: str | None = None,
        hwaccel_device: str | None = None,
        threads: int = 0,
    ) -> None:
        if rtsp_transport not in ("tcp", "udp"):
            raise ValueError(f"rtsp_transport must be 'tcp' or 'udp', got {rtsp_transport!r}")
        if hwaccel is not None and hwaccel != "auto" and hwaccel not in available_hwaccels():
            raise ValueError(
                f"hwaccel must be None, 'auto' or one of this FFmpeg's device types "
                f"{available_hwaccels()}, got {hwaccel!r}"
            )
        if threads < 0:
            raise ValueError(f"threads must be >= 0 (0: one per core), got {threads}")
        self.location = str(location)
        self.kind = source_kind(self.location)
        self.stream_id = stream_id or default_stream_id(self.location)
        self.options = options or DecodeOptions()
        self.rtsp_transport = rtsp_transport
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.container_options = dict(container_options or {})
        self.hwaccel = hwaccel
        self.hwaccel_device = hwaccel_device
        self.threads = threads
        self.stats = SourceStats()
        self._container: av.container.InputContainer | None = None
        # Pixel formats of the chosen device's pictures; empty when decoding in software.
        self._hw_formats: set[str] = set()
        # Video packets demuxed (the end-of-stream flush packet not included), and the
        # latest pts among them: together they tell a truncated file from a damaged one.
        self._packets_read = 0
        self._last_pts: int | None = None

    @property
    def display_name(self) -> str:
        """The location with its password masked: the only form that goes into messages."""
        return mask_url(self.location)

    def open(self) -> None:
        name = self.display_name
        path = self.location.removeprefix("file://")
        if self.kind is SourceKind.FILE and not Path(path).is_file():
            raise SourceOpenError(f"{name}: no such file")
        options = dict(self.container_options)
        fmt = None
        if self.kind is SourceKind.RTSP:
            options.setdefault("rtsp_transport", self.rtsp_transport)
        elif self.kind is SourceKind.DEVICE:
            fmt = "v4l2"
            path = path.removeprefix("v4l2://")
        timeout = None
        if self.kind is not SourceKind.FILE:
            timeout = (self.open_timeout_s, self.read_timeout_s)
        device_type, note = None, ""
        hwaccel = None
        if self.hwaccel is not None:
            device_type, note = choose_device(self.hwaccel, self.hwaccel_device)
            if device_type is not None:
                hwaccel = HWAccel(
                    device_type=device_type,
                    device=self.hwaccel_device,
                    allow_software_fallback=True,
                )
        try:
            container = av.open(
                path, mode="r", format=fmt, options=options, timeout=timeout, hwaccel=hwaccel
            )
        except (av.error.FFmpegError, OSError) as exc:
            hint = (
                "check that it is a complete video file"
                if self.kind is SourceKind.FILE
                else "check the URL, the credentials and that the camera is reachable"
            )
            raise SourceOpenError(
                f"{name}: cannot open as video ({mask_url(str(exc))}); {hint}"
            ) from exc
        if not container.streams.video:
            container.close()
            raise SourceOpenError(f"{name}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = self.threads
        self._set_decoder(stream.codec_context, device_type, note)
        self._container = container

    def _set_decoder(
        self, codec_context: av.codec.context.CodecContext, device_type: str | None, note: str
    ) -> None:
        """Record which decoder runs; the first picture confirms the hardware (``_decode``)."""
        stats = self.stats
        stats.decoder = codec_context.name
        self._hw_formats = set()
        if device_type is not None and not codec_context.is_hwaccel:
            note = f"{device_type}: the {codec_context.name} decoder cannot use it"
            device_type = None
        if device_type is not None:
            self._hw_formats = hw_pixel_formats(codec_context.codec, device_type)
        stats.hwaccel, stats.hwaccel_note = device_type, note

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def frames(self) -> Iterator[Frame]:
        if self._container is None:
            raise RuntimeError("open the source (or use it as a context manager) before reading")
        return self._decode(self._container)

    def _decode(self, container: av.container.InputContainer) -> Iterator[Frame]:
        stream = container.streams.video[0]
        decimator = FrameDecimator(self.options.max_fps)
        live = self.kind.is_live
        stats = self.stats
        # Demux and decode packet by packet (not container.decode), and judge the read
        # timeout at every packet: a live stream that keeps sending packets that make no
        # picture never trips FFmpeg's own timeout (data flows), so it is caught here. A
        # packet that does complete a picture is never dropped for being late.
        packets = self._packets(container, stream)
        # Time spent waiting on the stream; the consumer's time between frames is not counted.
        waiting_since = time.monotonic()
        size: tuple[int, int] | None = None
        while True:
            t0 = time.perf_counter()
            pictures = next(packets, None)
            if pictures is None:
                self._check_complete(stream)
                return
            if not pictures:
                stats.decode_seconds += time.perf_counter() - t0
                idle = time.monotonic() - waiting_since
                if live and idle > self.read_timeout_s:
                    raise SourceTimeoutError(
                        f"{self.display_name}: packets but no picture for {idle:.1f} s "
                        f"(read timeout {self.read_timeout_s:g} s)"
                    )
                continue
            for picture in pictures:
                if self._hw_formats:
                    self._confirm_hardware(stream.codec_context)
                pts = float(picture.time) if picture.time is not None else None
                if not decimator.keep(pts):
                    stats.skipped += 1
                    stats.decode_seconds += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    continue
                if size is None:
                    size = self.options.output_size(picture.width, picture.height)
                image = self._to_rgb(picture, size)
                stats.decode_seconds += time.perf_counter() - t0
                index = stats.frames + stats.skipped
                frame = Frame(self.stream_id, index, pts, time.time(), image)
                stats.frames += 1
                yield frame
                t0 = time.perf_counter()
            waiting_since = time.monotonic()

    @staticmethod
    def _to_rgb(picture: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
        width, height = size
        if (width, height) == (picture.width, picture.height):
            return picture.to_ndarray(format="rgb24")
        # Scale in the decoder's YUV first, then convert the smaller picture: measured here
        # at 1080p -> 720p, 2.6 ms/frame against 4.4-8 ms for one swscale call doing both
        # (YUV 4:2:0 is half the bytes of RGB).
        small = picture.reformat(width=width, height=height, interpolation="AREA")
        return small.to_ndarray(format="rgb24")

    def _confirm_hardware(self, codec_context: av.codec.context.CodecContext) -> None:
        """After the first picture: did the device decode it, or did FFmpeg fall back?

        The decoder picks its output format once it has parsed the stream; a device that
        cannot take this profile or size makes it choose a software format instead.
        """
        fmt = codec_context.pix_fmt
        if fmt not in self._hw_formats:
            stats = self.stats
            stats.hwaccel_note = (
                f"{stats.hwaccel}: the hardware decoder refused this stream (profile or size), "
                f"FFmpeg decodes it in software ({fmt})"
            )
            stats.hwaccel = None
        self._hw_formats = set()

    def _check_complete(self, stream: av.video.stream.VideoStream) -> None:
        """Raise if a file's index promised more pictures than its data held.

        FFmpeg reads a truncated MP4 whose index comes first (``+faststart``) without an
        error and simply stops early; silently short files would skew every statistic.
        Damage is not truncation: a damaged file's packets reach the end of its stream,
        though the decoder makes fewer pictures of them (corrupt ones are skipped, see
        ``CORRUPT_WINDOW_PACKETS``) and a damaged AVI chunk may lose a packet or two.
        """
        declared = stream.frames
        decoded = self.stats.frames + self.stats.skipped
        missing = declared - max(decoded, self._packets_read)
        slack = max(TRUNCATION_SLACK_FRAMES, declared // 100)
        if self.kind is not SourceKind.FILE or missing <= slack:
            return
        if stream.duration and stream.average_rate and self._last_pts is not None:
            end = (stream.start_time or 0) + stream.duration
            short_frames = float((end - self._last_pts) * stream.time_base * stream.average_rate)
            if short_frames <= slack + 1:  # the last packet's own duration
                return
        raise SourceDecodeError(
            f"{self.display_name}: truncated (or damaged near its end), its index lists "
            f"{declared} pictures but only {decoded} could be decoded; re-copy or re-encode "
            "the file"
        )

    def _packets(
        self, container: av.container.InputContainer, stream: av.video.stream.VideoStream
    ) -> Iterator[list[av.VideoFrame]]:
        """For each video packet, the pictures it completed (often none: decoder delay,
        a corrupt packet); FFmpeg's errors are turned into ours (path or masked URL).

        Corrupt packets are skipped and counted (see ``CORRUPT_WINDOW_PACKETS``).
        """
        name = self.display_name
        window = CorruptionWindow()
        try:
            for packet in container.demux(stream):
                if packet.size:
                    self._packets_read += 1
                    if packet.pts is not None:
                        self._last_pts = max(packet.pts, self._last_pts or packet.pts)
                try:
                    # The flush packet at the end drains the decoder threads.
                    pictures = stream.decode(packet)
                except CORRUPT_PACKET_ERRORS as exc:
                    self.stats.corrupt_packets += 1
                    if window.record(True):
                        raise SourceDecodeError(
                            f"{name}: {window.corrupt} of the last {window.window} packets "
                            f"could not be decoded, after "
                            f"{self.stats.frames + self.stats.skipped} pictures "
                            f"({mask_url(str(exc))}); the media is corrupt or not what its "
                            "container says, re-copy or re-encode it"
                        ) from exc
                    yield []
                    continue
                window.record(False)
                yield pictures
        except (av.error.ExitError, av.error.TimeoutError) as exc:
            raise SourceTimeoutError(
                f"{name}: no data for {self.read_timeout_s:g} s (read timeout) ({exc})"
            ) from exc
        except (av.error.FFmpegError, OSError) as exc:
            raise SourceDecodeError(
                f"{name}: decoding failed after {self.stats.frames + self.stats.skipped} "
                f"pictures ({mask_url(str(exc))}); the media is corrupt or truncated"
            ) from exc


class AvFileSource(AvSource):
    """``AvSource`` for a local file; kept for callers written before ``AvSource`` existed."""
