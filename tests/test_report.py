"""``fqm report``: a run folder read back and rendered, checked in a real Chromium.

Unit tests write events with the real JSONL sink (real JPEG crops) and then damage the
files by hand where a test needs it; the end-to-end test runs the real ``fqm run`` on a real
clip and opens the page in headless Chromium.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from monitor.assets import asset_path
from monitor.delivery.jsonl_sink import JsonlSink
from monitor.events import (
    BestFrame,
    BestFrameEvent,
    CurvePoint,
    FaceObservationEvent,
    FaceSignals,
    LocalCropStore,
    QualityCurve,
    QualityScore,
    StreamStatusEvent,
    TrackSummaryEvent,
    attach_crop,
    encode_crop,
    to_records,
)
from monitor.report import read_run, render_report, summary_line
from monitor.report.charts import nice_ticks

FQM = str(Path(sys.executable).with_name("fqm"))
T0 = datetime(2026, 12, 2, 9, 0, 0, tzinfo=UTC)
PRODUCER = "edge-1:42"


def quality(score: float, variant: str = "dslfiqa-random") -> QualityScore:
    return QualityScore(score=score, variant=variant, mode="center", backend="torch")


def signals(i: int) -> FaceSignals:
    return FaceSignals(
        face_size=100.0 + i,
        interocular=50.0,
        yaw=float(i % 20) - 10,
        pitch=2.0,
        roll=0.0,
        sharpness=300.0 + i,
        brightness=120.0,
        contrast=40.0,
    )


def face_image(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:512, 0:512]
    base = np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    return np.clip(base + rng.integers(0, 20, base.shape), 0, 255).astype(np.uint8)


class Run:
    """Writes one stream's events through the real JSONL sink."""

    def __init__(self, root: Path, stream: str = "cam-1", variant: str = "dslfiqa-random"):
        self.root, self.stream, self.variant = root, stream, variant
        self.sink = JsonlSink(root)

    def at(self, seconds: float) -> datetime:
        return T0 + timedelta(seconds=seconds)

    def publish(self, event, crop=None) -> None:
        for record in to_records(event, crop=crop):
            self.sink.publish(record)

    def status(self, seconds: float, state: str, **counters) -> None:
        self.publish(
            StreamStatusEvent(
                stream_id=self.stream,
                producer=PRODUCER,
                wall_time=self.at(seconds),
                state=state,
                **counters,
            )
        )

    def face(self, track: int, frame: int, score: float) -> None:
        self.publish(
            FaceObservationEvent(
                stream_id=self.stream,
                producer=PRODUCER,
                wall_time=self.at(frame / 25),
                track_id=track,
                frame_index=frame,
                pts=frame / 25,
                bbox=(10.0, 10.0, 110.0, 130.0),
                detection_score=0.9,
                quality=quality(score, self.variant),
                signals=signals(frame),
            )
        )

    def best(self, track: int, frame: int, score: float, store=None) -> BestFrameEvent:
        crop = encode_crop(face_image(frame))
        event = BestFrameEvent(
            stream_id=self.stream,
            producer=PRODUCER,
            wall_time=self.at(frame / 25),
            track_id=track,
            frame_index=frame,
            pts=frame / 25,
            bbox=(10.0, 10.0, 110.0, 130.0),
            detection_score=0.9,
            quality=quality(score, self.variant),
            previous_score=None,
            crop=attach_crop(crop, store),
        )
        self.publish(event, crop=None if store else crop)
        return event

    def summary(self, track: int, first: int, last: int, scores: dict[int, float], best):
        points = [CurvePoint(frame_index=f, pts=f / 25, score=s) for f, s in scores.items()]
        self.publish(
            TrackSummaryEvent(
                stream_id=self.stream,
                producer=PRODUCER,
                wall_time=self.at(last / 25),
                track_id=track,
                first_frame=first,
                last_frame=last,
                start_pts=first / 25,
                end_pts=last / 25,
                start_wall_time=self.at(first / 25),
                end_wall_time=self.at(last / 25),
                frames_seen=last - first + 1,
                observations_scored=len(points),
                best=BestFrame(
                    frame_index=best.frame_index,
                    pts=best.pts,
                    bbox=best.bbox,
                    detection_score=best.detection_score,
                    quality=best.quality,
                    crop=best.crop,
                ),
                curve=QualityCurve.from_points(points),
            )
        )

    def track(self, track: int, first: int, scores: list[float]) -> None:
        """A whole track: a face per frame from ``first``, a best frame at each new high."""
        high, best, seen = None, None, {}
        for i, score in enumerate(scores):
            frame = first + i
            self.face(track, frame, score)
            seen[frame] = score
            if high is None or score > high:
                high, best = score, self.best(track, frame, score)
        self.summary(track, first, first + len(scores) - 1, seen, best)

    def close(self) -> None:
        self.sink.close()


def test_reads_tracks_best_first_with_ranked_crops_and_health(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.status(0, "up", fps=25.0)
    run.track(1, 0, [0.5, 0.6, 0.55, 0.7, 0.65, 0.8, 0.75])  # 4 best frames
    run.track(2, 10, [0.9, 0.85])
    run.status(60, "reconnecting", frames_decoded=1500, frames_dropped=3, corrupt_packets=1)
    run.status(70, "up", fps=24.0, frames_decoded=1500, frames_dropped=3, corrupt_packets=1)
    run.status(100, "down", fps=24.5, frames_decoded=2250, frames_dropped=7, corrupt_packets=2)
    run.close()

    report = read_run(tmp_path, best_k=3)
    (stream,) = report.streams
    assert stream.stream_id == "cam-1"
    assert [t.track_id for t in stream.tracks] == [2, 1]  # best first
    one = stream.tracks[1]
    assert [s.rank for s in one.shots] == [0, 1, 2]
    assert [s.score for s in one.shots] == [0.8, 0.7, 0.6]  # the K best of 4 best frames
    assert all(s.crop is not None and s.crop.is_file() for s in one.shots)
    assert [c[2] for c in one.chosen] == [0.5, 0.6, 0.7, 0.8]
    assert [p.score for p in one.points] == [0.5, 0.6, 0.55, 0.7, 0.65, 0.8, 0.75]
    assert one.points[0].smoothed == 0.5
    assert 0.5 < one.points[-1].smoothed < 0.8
    assert one.points[0].signals is not None
    assert one.points[0].signals.face_size == 100.0
    assert one.ended
    assert one.scored == 7
    assert one.frames_seen == 7

    health = stream.health
    assert health.uptime == pytest.approx(0.9)  # 10 s of 100 reconnecting
    assert health.reconnects == 1
    assert (health.frames_decoded, health.frames_dropped, health.corrupt_packets) == (2250, 7, 2)
    assert health.fps == 24.5
    assert health.last_state == "down"
    assert [s.state for s in health.spans] == ["up", "reconnecting", "up", "down"]
    assert stream.events["face_observation"] == 9
    assert stream.events["stream_status"] == 4
    assert report.random_weights
    assert stream.issues == ()

    page = render_report(report)
    assert page.count('class="curve"') == 2
    assert page.count("<img ") == 4  # the 3 best of track 1, the only one of track 2
    assert "Random weights" in page
    assert "RANDOM WEIGHTS" in summary_line(report)


def test_torn_last_line_unknown_kind_and_newer_schema_are_reported(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.status(0, "up")
    run.track(1, 0, [0.5, 0.7])
    run.close()
    faces = tmp_path / "cam-1" / "fqm.faces.jsonl"
    good = faces.read_text().splitlines()[0]
    future_kind = json.loads(good) | {"kind": "face_embedding"}
    future_major = json.loads(good) | {"schema_version": "2.0"}
    with faces.open("a") as f:
        f.write(json.dumps(future_kind) + "\n")
        f.write(json.dumps(future_major) + "\n")
        f.write("not json at all\n")
        f.write(good[: len(good) // 2])  # torn: no newline

    report = read_run(tmp_path)
    (stream,) = report.streams
    text = " | ".join(i.problem for i in stream.issues)
    assert "face_embedding" in text
    assert "2.0" in text
    assert "upgrade fqm" in text
    assert "not an fqm event" in text
    assert "no newline" in text
    assert "still writing" in text
    assert {i.file for i in stream.issues} == {"cam-1/fqm.faces.jsonl"}
    assert report.issues == 4
    # The readable events were all read.
    assert stream.events["face_observation"] == 2
    assert [p.score for p in stream.tracks[0].points] == [0.5, 0.7]
    page = render_report(report)
    assert "could not be read in full" in page
    assert "no newline" in page


def test_empty_stream_folder_and_a_stream_without_tracks(tmp_path: Path) -> None:
    run = Run(tmp_path, stream="quiet")
    run.status(0, "up")
    run.status(5, "down", frames_decoded=125)
    run.close()
    (tmp_path / "empty").mkdir()

    report = read_run(tmp_path)
    empty, quiet = report.streams
    assert empty.stream_id == "empty"
    assert empty.tracks == ()
    assert empty.events == {}
    assert "no event files" in empty.issues[0].problem
    assert quiet.tracks == ()
    assert quiet.frames == 125
    assert quiet.health.uptime == 1.0
    assert not report.random_weights  # nothing was scored
    page = render_report(report)
    assert page.count("No scored tracks in this stream.") == 2
    assert "Random weights" not in page


def test_only_the_best_tracks_are_kept_and_the_rest_counted(tmp_path: Path) -> None:
    run = Run(tmp_path, variant="dslfiqa")
    for track in range(6):
        run.track(track, track * 10, [0.1 * track, 0.1 * track + 0.05])
    run.close()

    report = read_run(tmp_path, max_tracks=2)
    (stream,) = report.streams
    assert [t.track_id for t in stream.tracks] == [5, 4]
    assert stream.tracks_total == 6
    page = render_report(report)
    assert "4 more tracks not shown" in page
    assert "at most 0.450" in page
    assert "Random weights" not in page
    assert not report.random_weights


def test_a_long_track_is_thinned_to_max_points(tmp_path: Path) -> None:
    run = Run(tmp_path)
    scores = [0.5 + 0.4 * np.sin(i / 40) for i in range(1001)]
    for i, s in enumerate(scores):
        run.face(7, i, float(s))
    run.best(7, 63, float(scores[63]))  # the track was never summarised: still live
    run.close()

    (stream,) = read_run(tmp_path, max_points=50).streams
    (track,) = stream.tracks
    assert len(track.points) <= 50
    assert track.points[-1].frame_index == 1000  # the end is always drawn
    frames = [p.frame_index for p in track.points]
    assert frames == sorted(frames)
    assert len(set(np.diff(frames[:-1]))) == 1
    assert track.scored == 1001
    assert not track.ended
    assert track.high == pytest.approx(max(scores))
    assert "still live when the run stopped" in render_report(read_run(tmp_path))


def test_crops_missing_on_disk_or_claim_checked_elsewhere(tmp_path: Path) -> None:
    store = LocalCropStore(tmp_path / "store")
    run = Run(tmp_path / "run")
    kept = run.best(1, 0, 0.6, store=store)
    gone = run.best(1, 5, 0.7)
    run.best(2, 0, 0.5)
    run.close()
    (tmp_path / "run" / "cam-1" / "crops" / f"{gone.crop.crop_id}.jpg").unlink()
    report = read_run(tmp_path / "run")
    one = report.streams[0].tracks[0]
    assert one.shots[0].crop is None
    assert "not on disk" in one.shots[0].crop_note
    assert one.shots[1].crop == Path(kept.crop.uri.removeprefix("file://"))
    page = render_report(report)
    assert "not on disk" in page
    assert page.count("<img ") == 2


def test_stream_ids_and_reasons_are_escaped_and_masked(tmp_path: Path) -> None:
    run = Run(tmp_path, stream="<script>alert(1)</script>")
    run.status(0, "connecting", reason="opening rtsp://admin:hunter2@10.0.0.5/live")
    run.status(1, "up")
    run.close()
    page = render_report(read_run(tmp_path))
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "hunter2" not in page
    assert "rtsp://admin:***@10.0.0.5/live" in page


def test_nice_ticks() -> None:
    assert nice_ticks(0.93, 1.31, 4) == [1.0, 1.1, 1.2, 1.3]
    assert nice_ticks(0, 160, 5) == [0, 50, 100, 150]
    assert nice_ticks(2, 2) == [2]


# ---- the command ---------------------------------------------------------------------------


def fqm(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FQM_KAFKA_BOOTSTRAP", "FQM_WEIGHTS")}
    return subprocess.run([FQM, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "no such run folder"),
        (lambda p: (p / "file.txt").write_text("x") and p / "file.txt", "not a folder"),
        (lambda p: p, "no stream folders"),
    ],
)
def test_cli_bad_run_dir_is_one_error_line(tmp_path: Path, make, message: str) -> None:
    proc = fqm("report", str(make(tmp_path)))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("Error: ")
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


# ---- end to end: fqm run, fqm report, Chromium -------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

#: Injected into a copy of the page (the product page has no scripts): on load, records what
#: the browser decoded and drew into the DOM, which --dump-dom then prints.
PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]);
  const curves = [...document.querySelectorAll("article.track")].map(a => {
    const svg = a.querySelector("svg.curve");
    return svg ? svg.getBBox().width : 0;
  });
  document.body.setAttribute("data-probe", JSON.stringify({imgs, curves}));
});
</script></body>"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run: Megamind.avi (several faces, one after another), the tiny random model."""
    out = tmp_path_factory.mktemp("run") / "out"
    proc = fqm(
        "run",
        str(asset_path("Megamind.avi")),
        "--variant",
        "dslfiqa-tiny",
        "--max-frames",
        "160",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    return out


def test_report_of_a_real_run_opens_cleanly_in_chromium(run_dir: Path, tmp_path: Path) -> None:
    proc = fqm("report", str(run_dir), "-o", str(tmp_path / "report.html"))
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {tmp_path / 'report.html'}" in proc.stdout
    last_status = json.loads(
        (run_dir / "Megamind" / "fqm.status.jsonl").read_text().split("\n")[-2]
    )
    assert f"1 streams, {last_status['frames_decoded']:,} frames" in proc.stdout
    assert "RANDOM WEIGHTS" in proc.stdout

    page = (tmp_path / "report.html").read_text()
    report = read_run(run_dir)
    (stream,) = report.streams
    assert len(stream.tracks) >= 2
    assert all(t.shots for t in stream.tracks)
    assert "Random weights: these scores are meaningless" in page
    # Self-contained: no scripts, nothing fetched (the only URL is SVG's namespace).
    assert "<script" not in page
    assert re.findall(r"(?:src|href)=\"(?!data:)[^\"]*\"", page) == []
    assert set(re.findall(r"https?://[^\"' <]+", page)) <= {"http://www.w3.org/2000/svg"}
    assert len(page) < 2_000_000

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (scripts/bootstrap.sh installs it)")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE, 1))
    browser = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert browser.returncode == 0, browser.stderr[-2000:]
    console = [line for line in browser.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    match = re.search(r'data-probe="([^"]*)"', browser.stdout)
    assert match, browser.stdout[-2000:]
    probe = json.loads(match[1].replace("&quot;", '"'))
    shots = sum(len(t.shots) for t in stream.tracks)
    assert len(probe["imgs"]) == shots
    assert all(complete and w > 0 and h > 0 for complete, w, h in probe["imgs"])
    assert len(probe["curves"]) == len(stream.tracks)
    assert all(width > 100 for width in probe["curves"])  # drawn, in user units


def test_curve_falls_back_to_frames_without_timestamps() -> None:
    from monitor.report import ScorePoint, TrackReport
    from monitor.report.charts import quality_curve

    points = tuple(ScorePoint(f, None, 0.5 + f / 100, 0.5 + f / 200, None) for f in range(0, 40, 4))
    track = TrackReport(
        producer="p",
        track_id=3,
        best_score=0.86,
        shots=(),
        chosen=((0, None, 0.5), (36, None, 0.86)),
        points=points,
        from_summary=False,
        scored=10,
        frames_seen=None,
        first_frame=0,
        last_frame=36,
        start_pts=None,
        end_pts=None,
        ended=False,
        low=0.5,
        median=None,
        high=0.86,
        mean=None,
    )
    svg = quality_curve(track)
    assert ">frame</text>" in svg
    assert svg.count('class="chosen"') == 2
    assert "best frame at frame 36: 0.860" in svg
    assert svg.count("<polyline") == 2  # raw and smoothed
