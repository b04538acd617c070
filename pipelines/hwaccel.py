"""Hardware decoding with PyAV: which devices FFmpeg offers, and whether one can be opened.

PyAV (14+) decodes on a device when ``av.open(..., hwaccel=HWAccel(device_type=...))`` is
given one; its ``allow_software_fallback`` covers a stream the device's decoder cannot take
(wrong codec or profile), but not a device that is absent: then ``av.open`` itself raises
(``PermissionError`` for CUDA without a driver). So ``AvSource`` asks ``probe_device``
first and decodes in software, saying why, when the device cannot be opened.
"""

from __future__ import annotations

import threading

import av
from av.codec.hwaccel import HWAccel, hwdevices_available

#: ``hwaccel="auto"`` tries the device types this FFmpeg offers in this order.
AUTO_PREFERENCE = (
    "cuda",
    "qsv",
    "vaapi",
    "videotoolbox",
    "d3d11va",
    "d3d12va",
    "dxva2",
    "vulkan",
    "amf",
    "drm",
)
#: Decoders tried, in order, to find one that can host a device type (``probe_device``
#: needs a codec to create a device context; the device itself does not depend on it).
_PROBE_CODECS = ("h264", "hevc", "av1", "vp9", "mpeg2video", "mjpeg", "vp8", "mpeg4")

# (device type, device) pairs that opened once: creating a CUDA context costs ~0.1-0.5 s,
# so it is not repeated on every reconnect. Failures are not cached: a driver may come up.
_opened: set[tuple[str, str | None]] = set()
_lock = threading.Lock()


def available_hwaccels() -> list[str]:
    """Device types this FFmpeg build supports, e.g. ``["cuda", "qsv", "drm", "amf"]``.

    Built in is not the same as present: ``probe_device`` says whether one opens here.
    """
    return list(hwdevices_available())


def hw_pixel_formats(codec: av.codec.Codec, device_type: str) -> set[str]:
    """Pixel formats in which ``codec`` outputs pictures decoded on ``device_type``."""
    return {
        cfg.format.name
        for cfg in codec.hardware_configs
        if cfg.device_type.name == device_type and cfg.format is not None
    }


def probe_device(device_type: str, device: str | None = None) -> str | None:
    """Open a ``device_type`` device (``device``: an index or path); ``None`` when it works.

    Returns:
        Why it cannot be used, in words, e.g. ``"cuda: cannot open the device (Operation not
        permitted)"``; ``None`` when it opened (cached for the process).
    """
    key = (device_type, device)
    with _lock:
        if key in _opened:
            return None
    if device_type not in hwdevices_available():
        return f"{device_type}: not built into this FFmpeg"
    for name in _PROBE_CODECS:
        try:
            codec = av.codec.Codec(name, "r")
        except (av.error.FFmpegError, ValueError):
            continue
        if not hw_pixel_formats(codec, device_type):
            continue
        try:
            HWAccel(device_type=device_type, device=device).create(codec)
        except (av.error.FFmpegError, OSError, RuntimeError, NotImplementedError) as exc:
            detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            return (
                f"{device_type}: cannot open the device ({detail}); "
                "is a device present and its driver installed?"
            )
        with _lock:
            _opened.add(key)
        return None
    return f"{device_type}: no decoder in this FFmpeg decodes on it"


def choose_device(request: str, device: str | None = None) -> tuple[str | None, str]:
    """The device type to decode on for ``request`` (``"auto"`` or a device type).

    Returns:
        ``(device_type, "")`` when one opened, else ``(None, why)`` with every reason.
    """
    candidates = (
        [t for t in AUTO_PREFERENCE if t in hwdevices_available()]
        if request == "auto"
        else [request]
    )
    reasons = []
    for device_type in candidates:
        reason = probe_device(device_type, device)
        if reason is None:
            return device_type, ""
        reasons.append(reason)
    return None, "; ".join(reasons) or "auto: no hardware device type in this FFmpeg"
