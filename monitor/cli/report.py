"""``fqm report RUN_DIR``: a run folder as one self-contained HTML page.

The reading and rendering live in :mod:`monitor.report`; this module only takes the options
and says where the page went.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path), metavar="RUN_DIR")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The HTML file to write [default: RUN_DIR/report.html].",
)
@click.option(
    "--max-tracks",
    type=click.IntRange(min=1),
    default=48,
    show_default=True,
    help="Tracks shown per stream (the best by score); the page counts the others.",
)
@click.option(
    "--best-k",
    type=click.IntRange(min=1, max=16),
    default=3,
    show_default=True,
    help="Best crops shown per track.",
)
@click.option(
    "--full-crops",
    is_flag=True,
    help="Embed the crops as they are (512 px) instead of thumbnails: a bigger file.",
)
def report_cli(
    run_dir: Path, output: Path | None, max_tracks: int, best_k: int, full_crops: bool
) -> None:
    """Write an HTML report of RUN_DIR (the --out folder of fqm run).

    Per stream: its health (uptime, state timeline, reconnects, dropped frames, fps) and
    its tracks, best first, each with its best crops, its quality curve and its cheap
    signals. One file, no network: crops are embedded, charts are SVG.
    """
    from monitor.report import PageOptions, read_run, summary_line, write_report

    report = read_run(run_dir, max_tracks=max_tracks, best_k=best_k)
    options = PageOptions(best_crop_px=None, other_crop_px=None) if full_crops else PageOptions()
    output = output if output is not None else run_dir / "report.html"
    size = write_report(report, output, options)
    click.echo(f"wrote {output} ({size / 1e6:.1f} MB)")
    click.echo(summary_line(report))
