"""Source locations: which kind a string names, and how to print it without its password."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from urllib.parse import urlsplit

#: What replaces a password (and a secret in a query string) wherever a URL is printed.
MASK = "***"

_SCHEME = r"[A-Za-z][A-Za-z0-9+.-]*://"
# user:password@host in any scheme://authority. The password may hold unencoded '/', ' ' and
# '@' (cameras' web pages accept them), so it runs to the LAST '@' that a host follows; it
# stops at quotes, brackets, a line end, '?', '#' and the next "scheme://", so that a
# message quoting several URLs is masked URL by URL.
_USERINFO = re.compile(
    rf"(?P<scheme>{_SCHEME})(?P<user>[^:@/?#\s'\"<>]*):"
    rf"(?:(?!{_SCHEME})[^?#'\"<>\r\n])*@(?=[\w\[])"
)
# A token given as the whole user name, with no password: https://TOKEN@host/...
_TOKEN_USER = re.compile(rf"(?P<scheme>{_SCHEME})[^:@/?#\s'\"<>]+@(?=[\w\[])")
# ?password=...&api_key=... style secrets that cameras, CDNs and APIs take in the query; the
# name may carry a prefix (apikey, api_key, x-auth-token, access_token).
_QUERY_SECRET = re.compile(
    r"(?P<key>[?&;][\w.-]*?(?:password|passwd|pass|pwd|token|key|secret|auth|sig"
    r"|signature)=)[^&;#\s'\"]*",
    re.IGNORECASE,
)


def mask_url(text: str) -> str:
    """Return ``text`` with every URL secret replaced by ``***``.

    Masks a password (``rtsp://admin:***@cam/...``, even one with unencoded ``/``, `` `` or
    ``@``), a token given as the user name (``https://***@host/...``) and secret query values
    (``?token=***``, ``&api_key=***``). Works on a bare URL and on any message that contains
    URLs (FFmpeg and GStreamer errors quote them), so sources pass every log line, exception
    message and event through it. Text without ``scheme://`` is left alone.

    Example:
        >>> mask_url("rtsp://admin:hunter2@10.0.0.5:554/stream1")
        'rtsp://admin:***@10.0.0.5:554/stream1'
    """
    masked = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    masked = _TOKEN_USER.sub(lambda m: f"{m['scheme']}{MASK}@", masked)
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
    # Split the masked form: a password with an unencoded '/' would otherwise end the
    # authority early and put the rest of the password into the path.
    masked = mask_url(text)
    parts = urlsplit(masked)
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # not a number: leave it out
        port = ""
    return f"{host}{port}{parts.path}".rstrip("/") or masked
