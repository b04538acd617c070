"""What a file holds before it is read: its video's duration (for progress bars)."""

from __future__ import annotations

from pathlib import Path

import av


def video_duration_s(path: str | Path) -> float | None:
    """Seconds of video in ``path`` from its container's header; ``None`` when unknown or
    unreadable (a progress bar then counts without a total; reading reports the error)."""
    try:
        with av.open(str(path)) as container:
            video = container.streams.video
            if not video:
                return None
            stream = video[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / av.time_base
    except (av.error.FFmpegError, OSError):
        return None
    return None
