"""Video decoded by GStreamer: ``uridecodebin`` or ``rtspsrc`` into an RGB ``appsink``.

GStreamer is the backend for hardware decoders (NVIDIA's ``nvh264dec`` / ``nvv4l2decoder``
are preferred when installed) and for user pipelines; PyAV stays the default.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.errors import (
    BackendUnavailableError,
    SourceDecodeError,
    SourceOpenError,
    SourceTimeoutError,
)
from pipelines.frame import Frame
from pipelines.gstreamer import load_gst
from pipelines.source import DecodeOptions, FrameDecimator, Source, SourceStats
from pipelines.urls import SourceKind, default_stream_id, mask_url, source_kind

#: Seconds to reach PLAYING (file opened, camera answered) before ``open`` gives up.
DEFAULT_OPEN_TIMEOUT_S = 10.0
#: Seconds without a picture before a read raises ``SourceTimeoutError``.
DEFAULT_READ_TIMEOUT_S = 10.0
#: How often a waiting read wakes to look for errors on the bus (an error stops the flow
#: of samples, so without this a corrupt file would wait out the whole read timeout).
POLL_S = 0.1
#: RTSP jitter-buffer latency; small, because fqm wants fresh frames, not smooth playback.
RTSP_LATENCY_MS = 200
#: Seconds ``close`` waits for the pipeline to stop. ``rtspsrc`` can hang for good in its
#: TEARDOWN when the server vanished mid-stream (seen here, about one run in two); the
#: pipeline is then left behind (see ``abandoned_pipelines``) rather than hanging the caller.
CLOSE_TIMEOUT_S = 3.0
#: Decoders made to outrank the software ones when present (``decodebin`` picks by rank).
NVIDIA_DECODERS = ("nvh264dec", "nvh265dec", "nvv4l2decoder", "nvjpegdec")
#: Pictures the appsink holds before it blocks the pipeline.
APPSINK_BUFFERS = 2
#: Name of the appsink in the pipelines we build, and the default for user pipelines.
SINK_NAME = "sink"
_SCALE_NAME = "fqm_scale"
_SIZE_NAME = "fqm_size"


# Pipelines whose stop hung: kept referenced so that they are never disposed while PLAYING.
_abandoned: list[Any] = []
_log = logging.getLogger(__name__)


def abandoned_pipelines() -> int:
    """How many pipelines this process left behind because they would not stop."""
    return len(_abandoned)


def _gst() -> Any:
    try:
        return load_gst()
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the GStreamer backend needs GStreamer and PyGObject: {exc}; "
            "or use the PyAV backend (backend='av')"
        ) from exc


def prefer_nvidia_decoders() -> list[str]:
    """Raise the rank of NVIDIA's decoders that are installed; return their names.

    Untested here (no NVIDIA GStreamer plug-ins on the build machines): it only changes
    the ranks ``decodebin`` sorts by, so nothing happens where they are absent.
    """
    gst = _gst()
    found = []
    for name in NVIDIA_DECODERS:
        factory = gst.ElementFactory.find(name)
        if factory is not None:
            factory.set_rank(gst.Rank.PRIMARY + 1)
            found.append(name)
    return found


class GstSource(Source):
    """Decodes ``location`` with GStreamer, or runs a user pipeline ending in an appsink.

    The built pipeline is ``uridecodebin`` (files, HTTP/HLS) or ``rtspsrc ! decodebin``
    (RTSP, so that TCP or UDP can be chosen), then ``videoconvert`` to packed RGB and an
    ``appsink``. RGB rows are padded to a multiple of 4 bytes, so odd widths have a stride
    larger than ``3 * width``; frames are cut out of the padded rows.

    Args:
        location: path or URL; ``None`` when ``pipeline`` is given.
        stream_id: id stamped on frames; defaults to the file stem or host and path.
        options: decimation and maximum size (built pipelines only): decimation drops
            pictures before scaling and conversion, scaling happens in YUV.
        pipeline: a ``gst-launch`` description ending in an RGB appsink named ``sink_name``,
            e.g. ``"filesrc location=a.mp4 ! decodebin ! videoconvert ! video/x-raw,format=RGB
            ! appsink name=sink"``.
        rtsp_transport: ``"tcp"`` or ``"udp"``.
        open_timeout_s, read_timeout_s: see the module constants.
        prefer_nvidia: give NVIDIA hardware decoders precedence when installed.

    Raises:
        BackendUnavailableError: GStreamer or PyGObject is missing (on construction).
    """

    def __init__(
        self,
        location: str | Path | None = None,
        stream_id: str | None = None,
        *,
        options: DecodeOptions | None = None,
        pipeline: str | None = None,
        sink_name: str = SINK_NAME,
        rtsp_transport: str = "tcp",
        open_timeout_s: float = DEFAULT_OPEN_TIMEOUT_S,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        prefer_nvidia: bool = True,
    ) -> None:
        if (location is None) == (pipeline is None):
            raise ValueError("give exactly one of location and pipeline")
        if rtsp_transport not in ("tcp", "udp"):
            raise ValueError(f"rtsp_transport must be 'tcp' or 'udp', got {rtsp_transport!r}")
        self.options = options or DecodeOptions()
        if pipeline is not None and self.options != DecodeOptions():
            raise ValueError(
                "DecodeOptions apply to built pipelines only; put videorate / videoscale "
                "in your own pipeline instead"
            )
        self._gst = _gst()
        if prefer_nvidia:
            prefer_nvidia_decoders()
        self.location = None if location is None else str(location)
        self.kind = source_kind(self.location) if self.location is not None else SourceKind.OTHER
        self.stream_id = stream_id or (
            default_stream_id(self.location) if self.location is not None else "gst"
        )
        self.user_pipeline = pipeline
        self.sink_name = sink_name
        self.rtsp_transport = rtsp_transport
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.stats = SourceStats()
        self._pipeline: Any = None
        self._sink: Any = None
        # Picture numbers of the buffers that passed decimation, in order; the appsink
        # delivers them in the same order (one buffer out per buffer in downstream).
        self._numbers: collections.deque[int] = collections.deque()
        self._pictures_seen = 0
        self._lock = threading.Lock()

    @property
    def display_name(self) -> str:
        """The location (or pipeline) with passwords masked."""
        return mask_url(self.location if self.location is not None else str(self.user_pipeline))

    # -- building -------------------------------------------------------------------------

    def _description(self) -> str:
        if self.user_pipeline is not None:
            return self.user_pipeline
        if self.kind is SourceKind.RTSP:
            protocols = "tcp" if self.rtsp_transport == "tcp" else "udp"
            head = f"rtspsrc name=src protocols={protocols} latency={RTSP_LATENCY_MS} ! decodebin"
        else:
            head = "uridecodebin name=src"
        # Never drop here, like AvSource: appsink's drops would go uncounted. Live sources are
        # read promptly by SupervisedSource / ThreadedSource, whose queue drops and counts.
        sink = f"appsink name={self.sink_name} sync=false max-buffers={APPSINK_BUFFERS} drop=false"
        return (
            # Decimate and scale in the decoder's YUV (half the bytes of RGB), then convert.
            f"{head} ! videoscale name={_SCALE_NAME} ! capsfilter name={_SIZE_NAME} "
            f"! videoconvert ! video/x-raw,format=RGB ! {sink}"
        )

    def _uri(self) -> str:
        assert self.location is not None
        if "://" in self.location:
            return self.location
        return Path(self.location).resolve().as_uri()

    def open(self) -> None:
        gst = self._gst
        name = self.display_name
        if self.kind is SourceKind.FILE and self.location is not None:
            path = Path(self.location.removeprefix("file://"))
            if not path.is_file():
                raise SourceOpenError(f"{name}: no such file")
        try:
            pipeline = gst.parse_launch(self._description())
        except Exception as exc:  # GLib.Error: a syntax error or a missing element
            raise SourceOpenError(f"{name}: invalid pipeline ({mask_url(str(exc))})") from exc
        sink = pipeline.get_by_name(self.sink_name)
        if sink is None or sink.get_factory().get_name() != "appsink":
            raise SourceOpenError(
                f"{name}: the pipeline must end in an appsink named {self.sink_name!r}"
            )
        if self.user_pipeline is None:
            src = pipeline.get_by_name("src")
            if self.kind is SourceKind.RTSP:
                src.set_property("location", self.location)
            else:
                src.set_property("uri", self._uri())
            pad = pipeline.get_by_name(_SCALE_NAME).get_static_pad("sink")
            decimator = FrameDecimator(self.options.max_fps)
            pad.add_probe(gst.PadProbeType.BUFFER, self._on_buffer, decimator)
            if self.options.max_width or self.options.max_height:
                caps_filter = pipeline.get_by_name(_SIZE_NAME)
                pad.add_probe(gst.PadProbeType.EVENT_DOWNSTREAM, self._on_caps, caps_filter)
        self._pipeline, self._sink = pipeline, sink
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        gst = self._gst
        name = self.display_name
        if self._pipeline.set_state(gst.State.PLAYING) == gst.StateChangeReturn.FAILURE:
            raise SourceOpenError(f"{name}: cannot start ({self._bus_error() or 'no reason'})")
        deadline = time.monotonic() + self.open_timeout_s
        while True:
            ret, _state, _ = self._pipeline.get_state(int(POLL_S * gst.SECOND))
            error = self._bus_error()
            if error or ret == gst.StateChangeReturn.FAILURE:
                raise SourceOpenError(f"{name}: cannot open as video ({error or 'no reason'})")
            if ret in (gst.StateChangeReturn.SUCCESS, gst.StateChangeReturn.NO_PREROLL):
                return
            if time.monotonic() > deadline:
                # qtdemux sometimes waits silently on a file with no index (seen with cut
                # recordings) instead of posting its error: the timeout is the error then.
                hint = (
                    "the file may be truncated or in a format GStreamer cannot demux"
                    if self.kind is SourceKind.FILE
                    else "check the URL and that the camera is reachable"
                )
                raise SourceOpenError(
                    f"{name}: did not start within {self.open_timeout_s:g} s; {hint}"
                )

    def _on_buffer(self, pad: Any, info: Any, decimator: FrameDecimator) -> Any:
        """Number each picture and drop the ones decimation skips (streaming thread)."""
        gst = self._gst
        buffer = info.get_buffer()
        pts = None if buffer.pts == gst.CLOCK_TIME_NONE else buffer.pts / gst.SECOND
        with self._lock:
            number = self._pictures_seen
            self._pictures_seen += 1
            if not decimator.keep(pts):
                self.stats.skipped += 1
                return gst.PadProbeReturn.DROP
            self._numbers.append(number)
        return gst.PadProbeReturn.OK

    def _on_caps(self, pad: Any, info: Any, caps_filter: Any) -> Any:
        """On the decoder's caps, bound the output size keeping the aspect ratio."""
        gst = self._gst
        event = info.get_event()
        if event.type == gst.EventType.CAPS:
            structure = event.parse_caps().get_structure(0)
            ok_w, width = structure.get_int("width")
            ok_h, height = structure.get_int("height")
            if ok_w and ok_h:
                out_w, out_h = self.options.output_size(width, height)
                caps = gst.Caps.from_string(
                    f"video/x-raw,width={out_w},height={out_h},pixel-aspect-ratio=1/1"
                )
                caps_filter.set_property("caps", caps)
        return gst.PadProbeReturn.OK

    def _bus_error(self) -> str | None:
        """The first error (or ``None``) waiting on the bus, masked."""
        bus = self._pipeline.get_bus()
        message = bus.pop_filtered(self._gst.MessageType.ERROR)
        if message is None:
            return None
        error, _debug = message.parse_error()
        source = message.src.get_name() if message.src is not None else "?"
        return mask_url(f"{source}: {error.message}")

    def close(self) -> None:
        pipeline, self._pipeline, self._sink = self._pipeline, None, None
        if pipeline is None:
            return
        null = self._gst.State.NULL
        stopper = threading.Thread(
            target=pipeline.set_state, args=(null,), name="fqm-gst-stop", daemon=True
        )
        stopper.start()
        stopper.join(CLOSE_TIMEOUT_S)
        if stopper.is_alive():
            _abandoned.append(pipeline)
            _log.warning(
                "%s: GStreamer pipeline did not stop within %g s; left behind (%d so far)",
                self.display_name,
                CLOSE_TIMEOUT_S,
                len(_abandoned),
            )

    # -- reading --------------------------------------------------------------------------

    def frames(self) -> Iterator[Frame]:
        if self._pipeline is None:
            raise RuntimeError("open the source (or use it as a context manager) before reading")
        return self._read()

    def _read(self) -> Iterator[Frame]:
        gst = self._gst
        sink = self._sink
        name = self.display_name
        stats = self.stats
        wait_ns = int(POLL_S * gst.SECOND)
        while True:
            t0 = time.perf_counter()
            waited_from = time.monotonic()
            sample = None
            while sample is None:
                sample = sink.emit("try-pull-sample", wait_ns)
                if sample is not None:
                    break
                error = self._bus_error()
                if error:
                    raise SourceDecodeError(
                        f"{name}: decoding failed after {stats.frames} frames ({error})"
                    )
                if sink.get_property("eos"):
                    return
                waited = time.monotonic() - waited_from
                if waited > self.read_timeout_s:
                    raise SourceTimeoutError(f"{name}: no picture for {waited:.1f} s")
            if not stats.decoder:
                self._find_decoder()
            image = self._to_array(sample)
            buffer = sample.get_buffer()
            pts = None if buffer.pts == gst.CLOCK_TIME_NONE else buffer.pts / gst.SECOND
            with self._lock:
                number = self._numbers.popleft() if self._numbers else stats.frames
            stats.decode_seconds += time.perf_counter() - t0
            stats.frames += 1
            yield Frame(self.stream_id, number, pts, time.time(), image)

    def _find_decoder(self) -> None:
        """Record the video decoder ``decodebin`` picked (known once a picture came out)."""
        decoders: list[Any] = []

        def visit(element: Any) -> None:
            factory = element.get_factory()
            klass = factory.get_metadata("klass") if factory is not None else ""
            if "Decoder/Video" in klass:
                decoders.append(factory)

        self._pipeline.iterate_recurse().foreach(visit)
        if not decoders:
            self.stats.decoder = "unknown"
            return
        factory = decoders[0]
        name = factory.get_name()
        hardware = name in NVIDIA_DECODERS or "Hardware" in factory.get_metadata("klass")
        self.stats.decoder = name
        self.stats.hwaccel = ("cuda" if name.startswith("nv") else "hardware") if hardware else None

    def _to_array(self, sample: Any) -> np.ndarray:
        structure = sample.get_caps().get_structure(0)
        fmt = structure.get_value("format")
        if fmt != "RGB":
            raise SourceDecodeError(
                f"{self.display_name}: the appsink must receive video/x-raw,format=RGB, got {fmt}"
            )
        width = structure.get_value("width")
        height = structure.get_value("height")
        buffer = sample.get_buffer()
        data = buffer.extract_dup(0, buffer.get_size())
        return rgb_from_padded(data, width, height)


def rgb_from_padded(data: bytes, width: int, height: int) -> np.ndarray:
    """An ``(height, width, 3)`` view (or copy) of packed RGB rows padded to any stride.

    GStreamer pads each row to a multiple of 4 bytes: a 175-pixel row holds 525 bytes of
    pixels in a 528-byte stride. The stride is recovered from the buffer size.
    """
    row = width * 3
    if height <= 0 or len(data) % height or len(data) // height < row:
        raise SourceDecodeError(
            f"an RGB buffer of {len(data)} bytes cannot hold {height} rows of {width} pixels"
        )
    stride = len(data) // height
    rows = np.frombuffer(data, np.uint8).reshape(height, stride)
    if stride == row:
        return rows.reshape(height, width, 3)  # read-only view of the immutable bytes
    return np.ascontiguousarray(rows[:, :row]).reshape(height, width, 3)
