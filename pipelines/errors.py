"""Errors raised by video sources; each also subclasses the builtin a caller would expect.

Messages never hold a password: sources pass locations through ``urls.mask_url``.
"""

from __future__ import annotations


class SourceError(Exception):
    """A source cannot be opened or read."""


class SourceOpenError(SourceError, OSError):
    """The source does not exist, is not a video, or cannot be reached."""


class SourceDecodeError(SourceError, ValueError):
    """The source opened but its data cannot be decoded (corrupt or truncated media)."""


class SourceTimeoutError(SourceError, TimeoutError):
    """No frame arrived within the read timeout: the stream stalled without ending."""


class SourceGaveUpError(SourceError, ConnectionError):
    """A supervised source failed too many times in a row and stopped reconnecting."""


class BackendUnavailableError(SourceError, ImportError):
    """The decoding backend (GStreamer, PyGObject) is not installed on this machine."""
