"""The report as one self-contained HTML file: inline CSS, crops as data URIs, SVG charts.

The page is a Jinja2 template (``report.html.j2`` beside this module) with autoescaping on;
everything from the events (stream ids, reasons, producers) is escaped, and the SVG the
charts draw is the only markup passed through. No JavaScript, no network.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from monitor import __version__
from monitor.report import charts, fmt
from monitor.report.crops import crop_data_uri
from monitor.report.model import RunReport, StreamReport, TrackReport

#: Longest side of the best crop (rank 0) and of the others, in pixels (shown at ~1.6x).
BEST_CROP_PX = 256
OTHER_CROP_PX = 128

#: Reasons of a ``down`` that is a normal end (a file read to its end, ``--max-frames``,
#: a shutdown): the service's words (docs/service.md). The stream is shown as ended, not failed.
ORDERLY_ENDS = ("end of stream", "max frames", "stopped")

#: The cheap signals the cards plot: (attribute, label, unit, digits).
SIGNALS = (
    ("face_size", "face size", "px", 0),
    ("yaw", "yaw", "°", 1),
    ("pitch", "pitch", "°", 1),
    ("sharpness", "sharpness", "", 0),
    ("brightness", "brightness", "", 0),
)


@dataclass(frozen=True)
class PageOptions:
    """How the page is built. ``best_crop_px``/``other_crop_px``: ``None`` embeds the crops
    as they are (largest file)."""

    best_crop_px: int | None = BEST_CROP_PX
    other_crop_px: int | None = OTHER_CROP_PX
    generated: datetime | None = None


def render_report(report: RunReport, options: PageOptions | None = None) -> str:
    """The HTML page of ``report``."""
    options = options or PageOptions()
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(fmt=fmt, state_colours=charts.STATE_COLOURS)
    template = env.get_template("report.html.j2")
    starts = [s.first_time for s in report.streams if s.first_time is not None]
    ends = [s.last_time for s in report.streams if s.last_time is not None]
    return template.render(
        run_start=min(starts, default=None),
        run_end=max(ends, default=None),
        report=report,
        streams=[_stream_view(s, options) for s in report.streams],
        generated=options.generated or datetime.now(UTC),
        version=__version__,
    )


def write_report(report: RunReport, path: Path, options: PageOptions | None = None) -> int:
    """Write the page to ``path`` (atomically: a reader never sees half a page); its size."""
    page = render_report(report, options).encode("utf-8")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(page)
    tmp.replace(path)
    return len(page)


def summary_line(report: RunReport) -> str:
    """One line for the terminal: what the page holds, and the warnings that matter."""
    line = (
        f"{len(report.streams)} streams, {report.frames:,} frames, {report.tracks:,} tracks, "
        f"{report.events:,} events"
    )
    if report.models:
        line += f"; model {', '.join(report.models)}"
    if report.random_weights:
        line += "; RANDOM WEIGHTS: the scores are meaningless"
    if report.issues:
        line += f"; {report.issues} unreadable lines (see the page)"
    return line


def _stream_view(stream: StreamReport, options: PageOptions) -> dict:
    span = None
    if stream.first_time and stream.last_time:
        span = (stream.last_time - stream.first_time).total_seconds()
    shown = stream.tracks
    health = stream.health
    orderly = health.last_state == "down" and health.last_reason.startswith(ORDERLY_ENDS)
    return {
        "badge": f"ended: {health.last_reason}" if orderly else health.last_state,
        "badge_colour": "#6b7280"
        if orderly
        else charts.STATE_COLOURS.get(health.last_state or "", "#6b7280"),
        "s": stream,
        "span": span,
        "timeline": Markup(charts.timeline(stream.health)),
        "tracks": [_track_view(t, options) for t in shown],
        "hidden": stream.tracks_total - len(shown),
        "lowest_shown": shown[-1].best_score if shown else None,
        "states": [
            st for st in charts.STATE_COLOURS if any(x.state == st for x in stream.health.spans)
        ],
    }


def _track_view(track: TrackReport, options: PageOptions) -> dict:
    crops = []
    for shot in track.shots:
        size = options.best_crop_px if shot.rank == 0 else options.other_crop_px
        uri, note = crop_data_uri(shot, size)
        crops.append({"shot": shot, "uri": uri, "note": note})
    signals = []
    with_signals = [p.signals for p in track.points if p.signals is not None]
    if with_signals:
        for name, label, unit, digits in SIGNALS:
            values = [getattr(s, name) for s in with_signals]
            signals.append(
                {
                    "label": label,
                    "spark": Markup(charts.sparkline(values)),
                    "median": fmt.number(statistics.median(values), digits) + unit,
                    "range": f"{fmt.number(min(values), digits)} {fmt.DASH} "
                    f"{fmt.number(max(values), digits)}",
                }
            )
    life = None
    if track.start_pts is not None and track.end_pts is not None:
        life = track.end_pts - track.start_pts
    return {
        "t": track,
        "crops": crops,
        "curve": Markup(charts.quality_curve(track)),
        "signals": signals,
        "life": life,
    }
