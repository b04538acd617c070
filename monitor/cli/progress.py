"""What ``fqm run`` shows while it runs: a bar per file, a line per live stream.

On a terminal: tqdm bars, redrawn in place (files: seconds of video read out of the file's
duration; live streams: frames, no total), each with a compact postfix (status, faces seen
and scored, tracks, best score). Elsewhere (a log file, a container's stdout) redrawing is
noise, so a plain line per stream is printed every ``LINE_INTERVAL_S`` seconds instead.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import click
from tqdm import tqdm

#: Seconds between plain progress lines when stderr is not a terminal.
LINE_INTERVAL_S = 10.0


def progress_line(sid: str, p) -> str:
    """One stream's progress in words (``StreamProgress``)."""
    best = "-" if p.best_score is None else f"{p.best_score:.3f}"
    return (
        f"{sid}: {p.status}, frames {p.frames}, faces {p.faces_seen} (scored "
        f"{p.faces_scored}), tracks {p.tracks}, best {best}"
    )


def _postfix(p) -> str:
    best = "-" if p.best_score is None else f"{p.best_score:.3f}"
    return f"{p.status} faces {p.faces_seen} scored {p.faces_scored} tracks {p.tracks} best {best}"


class ProgressDisplay:
    """Shows ``progress()`` (``[(stream_id, StreamProgress)]``) on stderr.

    Args:
        progress: returns the streams' progress (read from the running service).
        durations: seconds of video per file stream (``None`` when unknown).
        tty: draw bars (default: whether stderr is a terminal).
    """

    def __init__(
        self,
        progress: Callable[[], list],
        durations: dict[str, float | None],
        *,
        tty: bool | None = None,
    ) -> None:
        self.progress = progress
        self.durations = durations
        self.tty = sys.stderr.isatty() if tty is None else tty
        self._bars: dict[str, tqdm] = {}
        self._last_lines = time.monotonic()

    def update(self) -> None:
        if self.tty:
            self._draw()
        elif time.monotonic() - self._last_lines >= LINE_INTERVAL_S:
            self._last_lines = time.monotonic()
            for sid, p in self.progress():
                if not p.done:
                    click.echo(progress_line(sid, p), err=True)

    def _draw(self) -> None:
        for sid, p in self.progress():
            bar = self._bars.get(sid)
            total = self.durations.get(sid)
            if bar is None:
                bar = self._bars[sid] = tqdm(
                    total=round(total, 1) if total else None,
                    desc=sid,
                    unit="s" if total else " frames",
                    position=len(self._bars),
                    leave=True,
                    dynamic_ncols=True,
                    file=sys.stderr,
                    bar_format=(
                        "{desc} {percentage:3.0f}%|{bar:20}| {n:.1f}/{total:.1f} s {postfix}"
                        if total
                        else "{desc} {n} frames [{rate_fmt}] {postfix}"
                    ),
                )
            now = (p.position_s or 0.0) if total else p.frames
            bar.n = min(now, bar.total) if bar.total else now
            bar.set_postfix_str(_postfix(p), refresh=False)
            bar.refresh()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
