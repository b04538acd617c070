"""Source locations: which kind a string names, and how to print it without its password."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from urllib.parse import urlsplit

#: What replaces a password (and a secret in a query string) wherever a URL is printed.
MASK = "***"

# user:password@ in any scheme://authority; the password may hold anything but '@' or '/'.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/\s]*):[^@/\s]*@")
# ?password=...&token=... style secrets that some cameras and CDNs take in the query.
_QUERY_SECRET = re.compile(
    r"(?P<key>[?&;](?:password|passwd|pass|pwd|token|access_token|key|secret|auth|sig"
    r"|signature)=)[^&;#\s]*",
    re.IGNORECASE,
)


def mask_url(text: str) -> str:
    """Return ``text`` with every URL password (and secret query value) replaced by ``***``.

    Works on a bare URL and on any message that contains URLs (FFmpeg and GStreamer errors
    quote them), so sources pass every log line, exception message and event through it.

    Example:
        >>> mask_url("rtsp://admin:hunter2@10.0.0.5:554/stream1")
        'rtsp://admin:***@10.0.0.5:554/stream1'
    """
    masked = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}{MASK}", masked)


class SourceKind(Enum):
    """How a location is read; decides timeouts, transport options and backpressure."""

    FILE = "file"
    RTSP = "rtsp"
    HTTP = "http"  # progressive HTTP(S) and HLS playlists
    DEVICE = "device"  # V4L2 capture devices (/dev/video*)
    OTHER = "other"  # any other URL FFmpeg or GStreamer understands (udp://, srt://, ...)

    @property
    def is_live(self) -> bool:
        """Live kinds drop old frames when the consumer lags; files are read exactly."""
        return self is not SourceKind.FILE


def source_kind(location: str | Path) -> SourceKind:
    """Classify ``location`` (a path, ``file://`` URL, stream URL or ``/dev/video*``)."""
    text = str(location)
    if text.startswith("/dev/video") or text.startswith("v4l2://"):
        return SourceKind.DEVICE
    scheme = urlsplit(text).scheme.lower() if "://" in text else ""
    if scheme in ("", "file"):
        return SourceKind.FILE
    if scheme in ("rtsp", "rtsps", "rtspt", "rtspu"):
        return SourceKind.RTSP
    if scheme in ("http", "https"):
        return SourceKind.HTTP
    return SourceKind.OTHER


def default_stream_id(location: str | Path) -> str:
    """A readable id for a location: a file's stem, else host plus path, never credentials."""
    text = str(location)
    kind = source_kind(text)
    if kind is SourceKind.FILE:
        return Path(text.removeprefix("file://")).stem
    if kind is SourceKind.DEVICE:
        return Path(text.removeprefix("v4l2://")).name
    parts = urlsplit(text)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}{parts.path}".rstrip("/") or mask_url(text)
