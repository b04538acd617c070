"""Numbers, times and durations as the report prints them (short, unit-bearing)."""

from __future__ import annotations

import math
from datetime import datetime

#: What an unknown value prints as (an en dash).
DASH = "\u2013"


def count(n: int | None) -> str:
    """``12,345``; a dash for unknown."""
    return DASH if n is None else f"{n:,}"


def score(value: float | None) -> str:
    return DASH if value is None else f"{value:.3f}"


def number(value: float | None, digits: int = 1) -> str:
    """A measurement: ``135.5``, ``1.2k`` above ten thousand."""
    if value is None or not math.isfinite(value):
        return DASH
    if abs(value) >= 10_000:
        return f"{value / 1000:.1f}k"
    return f"{value:.{digits}f}"


def percent(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value * 100:.1f}%" if value < 0.9995 else "100%"


def duration(seconds: float | None) -> str:
    """``850 ms``, ``42.0 s``, ``3 min 05 s``, ``2 h 07 min``."""
    if seconds is None:
        return DASH
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def when(value: datetime | None) -> str:
    """``2026-12-02 11:16:25 UTC``."""
    return DASH if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def clock(value: datetime | None) -> str:
    return DASH if value is None else value.strftime("%H:%M:%S")


def position(frame: int | None, pts: float | None) -> str:
    """Where in the stream: ``3.12 s (frame 75)``, or ``frame 75`` without timestamps."""
    if frame is None:
        return DASH
    return f"frame {frame}" if pts is None else f"{pts:.2f} s (frame {frame})"
