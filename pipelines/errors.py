"""Errors raised by video sources; each also subclasses the builtin a caller would expect."""

from __future__ import annotations


class SourceError(Exception):
    """A source cannot be opened or read."""


class SourceOpenError(SourceError, OSError):
    """The source does not exist, is not a video, or cannot be reached."""


class SourceDecodeError(SourceError, ValueError):
    """The source opened but its data cannot be decoded (corrupt or truncated media)."""
