"""Inline SVG charts drawn in Python: a track's quality curve, sparklines, a status timeline.

No JavaScript and no chart library: the page must open anywhere, offline. Each function
returns SVG markup (text is escaped here); hover titles give exact values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from monitor.report import fmt
from monitor.report.model import StreamHealth, TrackReport

#: Colours of the stream states (also the legend's).
STATE_COLOURS = {
    "up": "#16a34a",
    "connecting": "#94a3b8",
    "stalled": "#f59e0b",
    "reconnecting": "#ea580c",
    "down": "#dc2626",
}
_RAW, _SMOOTH, _MARK, _BEST, _GRID, _TEXT = (
    "#94a3b8",
    "#2563eb",
    "#f59e0b",
    "#dc2626",
    "#e5e7eb",
    "#6b7280",
)


def nice_ticks(lo: float, hi: float, target: int = 4) -> list[float]:
    """About ``target`` round tick values (1, 2, 2.5, 5 x 10^k steps) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(target, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, t = [], first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e4 else f"{value:.3g}"


def quality_curve(track: TrackReport, width: int = 440, height: int = 170) -> str:
    """Score per scored face over the track's life, the smoothed curve, and a marker where
    each best frame was chosen (the final best in red). x: seconds (pts), else frames."""
    points = track.points
    use_pts = all(p.pts is not None for p in points) and all(c[1] is not None for c in track.chosen)
    unit = "s" if use_pts else "frame"

    def x_of(frame: int, pts: float | None) -> float:
        return float(pts) if use_pts and pts is not None else float(frame)

    xs = [x_of(p.frame_index, p.pts) for p in points] + [x_of(f, t) for f, t, _ in track.chosen]
    if track.first_frame is not None and track.last_frame is not None:
        xs += [x_of(track.first_frame, track.start_pts), x_of(track.last_frame, track.end_pts)]
    ys = [p.score for p in points] + [p.smoothed for p in points] + [s for *_, s in track.chosen]
    if not xs or not ys:
        return _empty(width, height, "no scored faces")
    x0, x1 = min(xs), max(xs)
    if x1 - x0 < 1e-9:
        x0, x1 = x0 - 1, x1 + 1
    y0, y1 = min(ys), max(ys)
    pad = max((y1 - y0) * 0.12, 0.01)
    y0, y1 = y0 - pad, y1 + pad
    left, right, top, bottom = 42, 10, 10, 24
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    out = [
        f'<svg class="curve" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="quality curve of track {track.track_id}">'
    ]
    for t in nice_ticks(y0, y1, 5):
        y = py(t)
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{_GRID}" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y + 3.5:.1f}" text-anchor="end" class="tick">'
            f"{_label(t)}</text>"
        )
    for t in nice_ticks(x0, x1, 5):
        x = px(t)
        if x > width - right - 16:  # leave room for the unit
            continue
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + ph}" y2="{top + ph + 4}" '
            f'stroke="{_TEXT}"/><text x="{x:.1f}" y="{height - 6}" text-anchor="middle" '
            f'class="tick">{_label(t)}</text>'
        )
    out.append(
        f'<text x="{width - right}" y="{height - 6}" text-anchor="end" class="tick unit">'
        f"{unit}</text>"
        f'<line x1="{left}" x2="{width - right}" y1="{top + ph}" y2="{top + ph}" stroke="{_TEXT}"/>'
    )
    best = max(track.chosen, key=lambda c: c[2]) if track.chosen else None
    for frame, pts, _ in track.chosen:
        x = px(x_of(frame, pts))
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" stroke="{_MARK}" '
            'stroke-width="1" stroke-dasharray="3 3" opacity="0.7"/>'
        )
    coords = [(px(x_of(p.frame_index, p.pts)), py(p.score)) for p in points]
    smooth = [(px(x_of(p.frame_index, p.pts)), py(p.smoothed)) for p in points]
    if len(coords) > 1:
        out.append(
            f'<polyline fill="none" stroke="{_RAW}" stroke-width="1" points="{_pts(coords)}"/>'
            f'<polyline class="smoothed" fill="none" stroke="{_SMOOTH}" stroke-width="2.2" '
            f'stroke-linejoin="round" points="{_pts(smooth)}"/>'
        )
    if len(coords) <= 160:
        for (x, y), p in zip(coords, points, strict=True):
            tip = escape(f"{fmt.position(p.frame_index, p.pts)}: {p.score:.3f}")
            out.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.2" fill="{_RAW}">'
                f"<title>{tip}</title></circle>"
            )
    for frame, pts, s in track.chosen:
        is_best = (frame, pts, s) == best
        tip = escape(
            f"{'best frame' if is_best else 'best changed'} at {fmt.position(frame, pts)}: {s:.3f}"
        )
        out.append(
            f'<circle class="chosen" cx="{px(x_of(frame, pts)):.1f}" cy="{py(s):.1f}" '
            f'r="{5 if is_best else 4}" fill="{_BEST if is_best else _MARK}" stroke="#fff" '
            f'stroke-width="1.5"><title>{tip}</title></circle>'
        )
    out.append("</svg>")
    return "".join(out)


def sparkline(values: Sequence[float], width: int = 120, height: int = 26) -> str:
    """A small line of ``values`` in order (their range fills the height)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return _empty(width, height, "")
    lo, hi = min(finite), max(finite)
    span = hi - lo or 1.0
    n = len(finite)
    coords = [
        (2 + (i / max(n - 1, 1)) * (width - 4), 3 + (1 - (v - lo) / span) * (height - 6))
        for i, v in enumerate(finite)
    ]
    out = [f'<svg class="spark" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}">']
    if n > 1:
        out.append(
            f'<polyline fill="none" stroke="{_SMOOTH}" stroke-width="1.4" '
            f'stroke-linejoin="round" points="{_pts(coords)}"/>'
        )
    x, y = coords[-1]
    out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="{_SMOOTH}"/></svg>')
    return "".join(out)


def timeline(health: StreamHealth, width: int = 1000, height: int = 18) -> str:
    """The stream's states over wall time, one coloured bar per span."""
    spans = health.spans
    if not spans:
        return _empty(width, height, "no status events")
    t0, t1 = spans[0].start, max(s.end for s in spans)
    total = (t1 - t0).total_seconds()
    out = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        'preserveAspectRatio="none">'
    ]
    for s in spans:
        a = (s.start - t0).total_seconds() / total if total > 0 else 0.0
        b = (s.end - t0).total_seconds() / total if total > 0 else 1.0
        w = max((b - a) * width, 2.0)
        colour = STATE_COLOURS.get(s.state, _TEXT)
        tip = escape(
            f"{s.state} {fmt.clock(s.start)} → {fmt.clock(s.end)} "
            f"({fmt.duration((s.end - s.start).total_seconds())})"
            + (f": {s.reason}" if s.reason else "")
        )
        out.append(
            f'<rect x="{min(a * width, width - w):.1f}" y="0" width="{w:.1f}" height="{height}" '
            f'fill="{colour}"><title>{tip}</title></rect>'
        )
    out.append("</svg>")
    return "".join(out)


def _pts(coords: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)


def _empty(width: int, height: int, text: str) -> str:
    return (
        f'<svg class="empty" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}">'
        f'<text x="{width / 2}" y="{height / 2 + 4}" text-anchor="middle" class="tick">'
        f"{escape(text)}</text></svg>"
    )
