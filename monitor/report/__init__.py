"""``fqm report``: a run folder (``fqm run --out``) as one self-contained HTML page.

* :mod:`~monitor.report.reader` reads the folder into typed per-stream, per-track data
  (:mod:`~monitor.report.model`) in bounded memory;
* :mod:`~monitor.report.charts` draws the SVG charts, :mod:`~monitor.report.crops` embeds
  the crops;
* :mod:`~monitor.report.html` renders the page (Jinja2 template ``report.html.j2``).

Example::

    report = read_run(Path("fqm-out"))
    write_report(report, Path("fqm-out/report.html"))
"""

from monitor.report.html import PageOptions, render_report, summary_line, write_report
from monitor.report.model import (
    BestShot,
    ReadIssue,
    ReportError,
    RunReport,
    ScorePoint,
    Signals,
    StatusSpan,
    StreamHealth,
    StreamReport,
    TrackReport,
)
from monitor.report.reader import read_run

__all__ = [
    "BestShot",
    "PageOptions",
    "ReadIssue",
    "ReportError",
    "RunReport",
    "ScorePoint",
    "Signals",
    "StatusSpan",
    "StreamHealth",
    "StreamReport",
    "TrackReport",
    "read_run",
    "render_report",
    "summary_line",
    "write_report",
]
