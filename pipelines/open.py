"""``open_source``: one call from a location and a backend name to the right ``Source``."""

from __future__ import annotations

from pathlib import Path

from pipelines.av_source import AvSource
from pipelines.source import DecodeOptions, Source
from pipelines.supervisor import SupervisedSource, SupervisorSettings
from pipelines.urls import default_stream_id, mask_url, source_kind

#: Backend names ``open_source`` takes: PyAV (FFmpeg, the default) and GStreamer.
BACKENDS = ("av", "gst")


def open_source(
    location: str | Path,
    backend: str = "av",
    *,
    stream_id: str | None = None,
    options: DecodeOptions | None = None,
    live: bool | None = None,
    hwaccel: str | None = None,
    rtsp_transport: str = "tcp",
    decoder_threads: int = 0,
    settings: SupervisorSettings | None = None,
) -> Source:
    """An unopened source for ``location``: plain for files, supervised for live streams.

    Args:
        location: a path, ``file://``, ``rtsp://``, ``http(s)://`` URL or ``/dev/videoN``.
        backend: ``"av"`` (PyAV) or ``"gst"`` (GStreamer, optional: ``open()`` of a missing
            install raises ``BackendUnavailableError`` here already, on construction).
        stream_id: id stamped on frames; defaults to the file stem or host and path.
        options: decimation and maximum size, see ``DecodeOptions``.
        live: ``None`` decides by the location (files are not live, streams and devices
            are); ``True`` wraps the source in a ``SupervisedSource`` (reconnects, stall
            watchdog, status events), ``False`` returns the bare backend source, which
            reads once and raises on the first failure.
        hwaccel: hardware decoding. PyAV: ``None``, ``"auto"`` or a device type, see
            ``AvSource``. GStreamer: ``None`` leaves decoder ranks alone, ``"auto"`` or
            ``"cuda"`` raise NVIDIA's decoders above the software ones (process-wide).
        rtsp_transport: ``"tcp"`` or ``"udp"``.
        decoder_threads: FFmpeg decoder threads (PyAV only; 0: one per core).
        settings: supervision settings for live sources; the inner source's read timeout is
            capped at ``settings.stall_timeout_s`` so that a stuck reader exits soon.

    Raises:
        ValueError: an unknown backend or an option the backend does not take; the message
            holds the location with its password masked.

    Example:
        >>> cam = open_source("rtsp://user:pw@cam/stream", options=DecodeOptions(max_fps=5))
        >>> with cam:
        ...     for frame in cam:
        ...         ...
    """
    name = mask_url(str(location))
    if backend not in BACKENDS:
        raise ValueError(f"{name}: backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "gst" and hwaccel not in (None, "auto", "cuda"):
        raise ValueError(
            f"{name}: the GStreamer backend takes hwaccel None, 'auto' or 'cuda' (NVIDIA "
            f"decoders), got {hwaccel!r}; use backend='av' for other device types"
        )
    if backend == "gst" and decoder_threads:
        raise ValueError(f"{name}: decoder_threads is for backend='av' only")
    kind = source_kind(location)
    live = kind.is_live if live is None else live
    stream_id = stream_id or default_stream_id(location)
    options = options or DecodeOptions()
    settings = settings or SupervisorSettings()
    read_timeout_s = settings.stall_timeout_s if live else None

    def make() -> Source:
        kwargs: dict = {"options": options, "rtsp_transport": rtsp_transport}
        if read_timeout_s is not None:
            kwargs["read_timeout_s"] = read_timeout_s
        if backend == "av":
            try:
                return AvSource(
                    location, stream_id, hwaccel=hwaccel, threads=decoder_threads, **kwargs
                )
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        from pipelines.gst_source import GstSource  # GStreamer is optional

        return GstSource(location, stream_id, prefer_nvidia=hwaccel is not None, **kwargs)

    if not live:
        return make()
    make()  # fail now, not in the reader thread, on a bad option or a missing backend
    return SupervisedSource(make, stream_id, settings=settings)
