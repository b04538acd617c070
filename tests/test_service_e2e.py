"""``fqm run`` end to end on real parts (issue 12, item 6).

Real pieces only: the ``fqm`` command in a subprocess, the session's Kafka broker
(tests/conftest.py), GstRtspServer on 127.0.0.1 (tests/support/rtsp_server.py) serving
``franck.mp4`` in real time, real video files, MediaPipe, and the engine's tiny random
model (``--variant dslfiqa-tiny``: a fast testing aid; its scores mean nothing, which none
of these tests looks at).

* a live RTSP stream and a file at once, to Kafka, stopped by SIGTERM: every record valid,
  both streams with every kind and their crops (``test_rtsp_and_file_to_kafka``); and what
  the run said it published is all in the broker (``test_sigterm_loses_nothing``). The two
  tests read the same run (one fqm start-up costs ~25 s on a loaded 2-core machine);
* the RTSP server killed and restarted mid-run, to JSONL files, then ``fqm report`` on them;
* 10,000 frames with flat memory (slow).

No test asserts a speed. Waits have generous deadlines (below) so that a loaded CI machine
is slow, not failed; a process still running when a test ends is killed.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from monitor.assets import asset_path
from monitor.events import (
    BestFrameEvent,
    FaceObservationEvent,
    StreamStatusEvent,
    Topics,
    TrackSummaryEvent,
    loads,
    parse,
    parse_crop,
    schemas,
)
from tests.support.kafka_reader import TopicReader
from tests.support.rss import RssSampler
from tests.support.rtsp_server import RtspServer, unavailable

FQM = str(Path(sys.executable).with_name("fqm"))
TINY = ("--variant", "dslfiqa-tiny")
KINDS = {"face_observation", "best_frame", "track_summary", "stream_status"}

#: From launch to the first events: Python imports torch and MediaPipe, builds the model,
#: opens the sources, creates the topics. ~25 s measured on a 2-core machine at load 8.
STARTUP_S = 240.0
#: For anything else to happen once frames flow (an event, a reconnect, a few scored faces).
EVENT_WAIT_S = 120.0
#: ``--shutdown-deadline`` given to fqm: drain and flush must fit in it, or fqm exits 1.
SHUTDOWN_DEADLINE_S = 30
#: The process's own exit on top of that (interpreter teardown, threads joining).
EXIT_SLACK_S = 60.0


# ---- helpers ------------------------------------------------------------------------------


def _environ() -> dict[str, str]:
    drop = ("FQM_KAFKA_BOOTSTRAP", "FQM_WEIGHTS")
    return {k: v for k, v in os.environ.items() if k not in drop}


class FqmRun:
    """A running ``fqm run``; its stderr goes to a file (nobody has to drain a pipe)."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self._err = open(log, "w")  # noqa: SIM115 (closed in kill/wait)
        self.proc = subprocess.Popen(
            [FQM, "run", *args, "--shutdown-deadline", str(SHUTDOWN_DEADLINE_S)],
            stdout=subprocess.DEVNULL,
            stderr=self._err,
            env=_environ(),
        )

    @property
    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        """SIGTERM, then wait for the exit (the deadline it was given, plus the slack)."""
        self.proc.send_signal(signal.SIGTERM)
        start = time.monotonic()
        try:
            rc = self.proc.wait(SHUTDOWN_DEADLINE_S + EXIT_SLACK_S)
        finally:
            self.kill()
        print(f"fqm exited {rc} {time.monotonic() - start:.1f} s after SIGTERM")
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._err.close()


def wait_until(what: str, check: Callable[[], bool], timeout: float, run: FqmRun) -> None:
    """Poll ``check`` until it holds; fail with fqm's stderr if it does not, or fqm died."""
    deadline = time.monotonic() + timeout
    while not check():
        if not run.alive():
            raise AssertionError(f"fqm exited ({run.proc.returncode}) before {what}:\n{run.stderr}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f} s; fqm said:\n{run.stderr}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def validators() -> dict[str, Draft202012Validator]:
    docs = schemas.load_all()
    registry = Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc)) for doc in docs.values()
    )
    return {k: Draft202012Validator(docs[k], registry=registry) for k in schemas.KINDS}


def check_schema(validators, value: bytes | str):
    """The event in a JSON value, after checking it against its kind's JSON Schema."""
    doc = json.loads(value)
    errors = [e.message for e in validators[doc["kind"]].iter_errors(doc)]
    assert errors == [], (doc, errors)
    return loads(value)


def read_jsonl(out: Path) -> list:
    """Every complete line of a JSONL run folder so far, parsed (a line being written is
    skipped until its newline is there)."""
    events = []
    for path in sorted(out.glob("*/*.jsonl")):
        data = path.read_bytes()
        for line in data[: data.rfind(b"\n") + 1].splitlines():
            events.append(loads(line))
    return events


def of(events: list, stream: str, kind: type) -> list:
    return [e for e in events if e.stream_id == stream and isinstance(e, kind)]


@pytest.fixture
def rtsp_server() -> Iterator[RtspServer]:
    if reason := unavailable():
        pytest.skip(reason)
    server = RtspServer(asset_path("franck.mp4"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ---- RTSP + file to Kafka, stopped by SIGTERM ---------------------------------------------


@dataclass
class KafkaRun:
    """What one ``fqm run`` (RTSP + file to Kafka, SIGTERM) left behind."""

    rc: int
    stderr: str
    records: list  # every record of the five topics, raw
    topics: Topics
    rtsp: str  # stream ids
    file: str


@pytest.fixture(scope="module")
def kafka_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> KafkaRun:
    """``fqm run RTSP FILE`` to Kafka, SIGTERMed once both streams published a best frame
    and two scored faces. The file is franck.mp4 whole (4,800 frames, minutes of work on
    a CPU), so both streams are mid-run when the signal comes."""
    if reason := unavailable():
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("kafka-run")
    prefix = f"fqm-e2e-{uuid.uuid4().hex[:8]}"
    topics = Topics.prefixed(prefix)
    names = [topics.faces, topics.best, topics.tracks, topics.status, topics.crops]
    file = asset_path("franck.mp4")
    with RtspServer(file) as server, TopicReader(kafka_bootstrap, names) as reader:
        rtsp = f"127.0.0.1:{server.port}/live"
        run = FqmRun(
            [
                *(server.url, str(file), *TINY, "--out", str(tmp / "out")),
                *("--kafka-bootstrap", kafka_bootstrap, "--topics-prefix", prefix),
            ],
            tmp / "stderr.txt",
        )
        try:
            scored: Counter[str] = Counter()
            best: Counter[str] = Counter()

            def both_scored() -> bool:
                for r in reader.poll(0.5):
                    kind = dict(r.headers).get("kind")
                    sid = r.key.decode()
                    scored[sid] += kind == b"face_observation"
                    best[sid] += kind == b"best_frame"
                return all(scored[s] >= 2 and best[s] >= 1 for s in (rtsp, "franck"))

            wait_until("scored faces on both streams", both_scored, STARTUP_S, run)
            rc = run.stop()
        finally:
            run.kill()
        records = reader.read_to_end(EVENT_WAIT_S)
    return KafkaRun(rc, run.stderr, records, topics, rtsp, "franck")


@pytest.mark.kafka
@pytest.mark.gstreamer
@pytest.mark.timeout(900)
def test_rtsp_and_file_to_kafka(kafka_run: KafkaRun, validators) -> None:
    """Every event on the broker follows its JSON Schema and parses with its headers and
    key; both streams have observations, best frames with their crops (same bytes as the
    event says), track summaries and status events."""
    run = kafka_run
    assert run.rc == 0, run.stderr
    crops, events = {}, []
    for r in run.records:
        if r.topic == run.topics.crops:
            crop = parse_crop(r)
            assert crop.jpeg[:2] == b"\xff\xd8"
            crops[crop.crop_id] = crop
        else:
            check_schema(validators, r.value)
            events.append(parse(r))  # key and headers agree with the value
            assert r.topic == getattr(run.topics, _TOPIC_OF[events[-1].kind])
    for sid in (run.rtsp, run.file):
        mine = [e for e in events if e.stream_id == sid]
        assert {e.kind for e in mine} == KINDS, (sid, Counter(e.kind for e in mine))
        for e in mine:
            if isinstance(e, BestFrameEvent):
                crop = crops[e.crop.crop_id]  # every best frame's crop arrived
                assert crop.stream_id == sid
                assert len(crop.jpeg) == e.crop.size_bytes
                assert hashlib.sha256(crop.jpeg).hexdigest() == e.crop.sha256
            if isinstance(e, TrackSummaryEvent) and e.best is not None:
                assert e.best.crop is None or e.best.crop.crop_id in crops
            if hasattr(e, "quality"):
                assert e.quality.variant == "dslfiqa-tiny-random"
        states = [e.state for e in mine if isinstance(e, StreamStatusEvent)]
        assert states[-1] == "down"
        assert "up" in states
    rtsp_states = [e.state for e in of(events, run.rtsp, StreamStatusEvent)]
    assert rtsp_states[:2] == ["connecting", "up"], rtsp_states
    # One stream's events come in the order they were made: frame indices never go back.
    for sid in (run.rtsp, run.file):
        frames = [e.frame_index for e in of(events, sid, FaceObservationEvent)]
        assert frames == sorted(frames), sid


_TOPIC_OF = {
    "face_observation": "faces",
    "best_frame": "best",
    "track_summary": "tracks",
    "stream_status": "status",
}


@pytest.mark.kafka
@pytest.mark.gstreamer
@pytest.mark.timeout(900)
def test_sigterm_loses_nothing(kafka_run: KafkaRun) -> None:
    """SIGTERM mid-run: exit 0 within ``--shutdown-deadline`` (a passed deadline exits 1),
    and every event and crop the final summary counts is in the broker (by id; duplicates
    are allowed, at least once, and counted); each stream's last status is down/stopped."""
    run = kafka_run
    assert run.rc == 0, run.stderr
    assert "stopping" in run.stderr
    total = re.search(r"(\d+) events and (\d+) crops written to Kafka", run.stderr)
    assert total, run.stderr
    events_said, crops_said = int(total[1]), int(total[2])

    ids: Counter[str] = Counter()
    crop_ids: Counter[str] = Counter()
    per_stream: dict[str, Counter[str]] = {}
    last_status: dict[str, StreamStatusEvent] = {}
    best_crops: set[str] = set()
    for r in run.records:
        if r.topic == run.topics.crops:
            crop_ids[str(parse_crop(r).crop_id)] += 1
            continue
        e = parse(r)
        if isinstance(e, BestFrameEvent):
            best_crops.add(str(e.crop.crop_id))
        if ids[str(e.event_id)] == 0:
            per_stream.setdefault(e.stream_id, Counter())[e.kind] += 1
        ids[str(e.event_id)] += 1
        if isinstance(e, StreamStatusEvent):
            last_status[e.stream_id] = e  # one stream's statuses arrive in order
    duplicates = sum(ids.values()) - len(ids)
    print(f"{len(ids)} events ({duplicates} duplicates), {len(crop_ids)} crops in the broker")
    assert len(ids) == events_said, f"fqm said {events_said} events, the broker has {len(ids)}"
    assert len(crop_ids) == crops_said
    assert best_crops <= set(crop_ids), "a best frame's crop is missing"
    # The per-stream lines count the per-face kinds: the broker holds each of them.
    for sid in (run.rtsp, run.file):
        line = re.search(rf"^{re.escape(sid)}: .* events (\{{.*\}})", run.stderr, re.M)
        assert line, (sid, run.stderr)
        said = ast.literal_eval(line[1])
        got = per_stream[sid]
        assert {k: got[k] for k in said} == said, (sid, said, got)
        assert said["face_observation"] >= 2
        assert said["best_frame"] >= 1
        assert (last_status[sid].state, last_status[sid].reason) == ("down", "stopped"), sid


# ---- the RTSP server dies and comes back, to JSONL; then fqm report ------------------------


def _after(events: list, first) -> list:
    """The events that come after ``first`` in a list read in file order."""
    return events[events.index(first) + 1 :]


@pytest.mark.gstreamer
@pytest.mark.timeout(900)
def test_rtsp_outage_is_reported_and_tracks_resume(
    rtsp_server: RtspServer, tmp_path: Path, validators
) -> None:
    """Kill the RTSP server mid-run: the stream reports it (``reconnecting``), reconnects
    when the server is back (``up`` again) and scores faces again, on frames whose indices
    go on from before; the file next to it never notices (only ``up``, then ``down``) and
    kept being scored during the outage. Then ``fqm report`` renders the run, outage
    included."""
    out = tmp_path / "out"
    rtsp = f"127.0.0.1:{rtsp_server.port}/live"
    file = asset_path("franck.mp4")  # 4,800 frames: still being read when the test ends
    run = FqmRun([rtsp_server.url, str(file), *TINY, "--out", str(out)], tmp_path / "err.txt")
    try:
        events: list = []

        def seen(kind: type, stream: str, count: int = 1, after=None) -> Callable[[], bool]:
            def check() -> bool:
                events[:] = read_jsonl(out)
                mine = of(events, stream, kind)
                if after is not None:
                    mine = [e for e in mine if e.wall_time > after.wall_time]
                return len(mine) >= count

            return check

        def status(stream: str, state: str, after=None) -> StreamStatusEvent:
            mine = of(events, stream, StreamStatusEvent)
            if after is not None:
                mine = _after(mine, after)
            return next(e for e in mine if e.state == state)

        def has_status(stream: str, state: str, after=None) -> Callable[[], bool]:
            def check() -> bool:
                events[:] = read_jsonl(out)
                try:
                    status(stream, state, after)
                except StopIteration:
                    return False
                return True

            return check

        wait_until("RTSP faces", seen(FaceObservationEvent, rtsp, 2), STARTUP_S, run)
        before = of(events, rtsp, FaceObservationEvent)[-1]
        up = status(rtsp, "up")
        rtsp_server.stop()
        wait_until("reconnecting", has_status(rtsp, "reconnecting", up), EVENT_WAIT_S, run)
        outage = status(rtsp, "reconnecting", up)
        # Keep the server away until the file has shown it goes on without it.
        wait_until(
            "file faces during the outage",
            seen(FaceObservationEvent, "franck", 2, after=outage),
            EVENT_WAIT_S,
            run,
        )
        rtsp_server.start()
        wait_until("up again", has_status(rtsp, "up", outage), EVENT_WAIT_S, run)
        back = status(rtsp, "up", outage)
        wait_until("RTSP faces again", seen(FaceObservationEvent, rtsp, 2, back), EVENT_WAIT_S, run)
        assert run.stop() == 0, run.stderr
    finally:
        run.kill()

    events = [check_schema(validators, line) for line in _lines(out)]
    states = [(e.state, e.reason) for e in of(events, rtsp, StreamStatusEvent)]
    print("RTSP statuses:", states)
    assert states[:2] == [("connecting", states[0][1]), ("up", states[1][1])]
    assert states[-1] == ("down", "stopped")
    kinds = [s for s, _ in states]
    first_up, reconnecting = kinds.index("up"), kinds.index("reconnecting")
    assert first_up < reconnecting < kinds.index("up", reconnecting), kinds

    faces = of(events, rtsp, FaceObservationEvent)
    resumed = [e for e in faces if e.wall_time > back.wall_time]
    assert len(resumed) >= 2
    assert min(e.frame_index for e in resumed) > before.frame_index  # indices go on
    frames = [e.frame_index for e in faces]
    assert frames == sorted(frames)
    summaries = {e.track_id for e in of(events, rtsp, TrackSummaryEvent)}
    assert {e.track_id for e in faces} <= summaries  # every track ended with its summary
    assert {e.track_id for e in resumed} <= summaries
    earlier = sorted({e.track_id for e in faces if e.wall_time <= outage.wall_time})
    print(f"RTSP tracks before the outage {earlier}, after {sorted({e.track_id for e in resumed})}")
    # A reconnect breaks continuity: the tracks before it end there, new ids follow.
    assert min(e.track_id for e in resumed) > max(earlier)

    file_states = [(e.state, e.reason) for e in of(events, "franck", StreamStatusEvent)]
    assert [s for s, _ in file_states] == ["up", "down"], file_states
    assert file_states[-1] == ("down", "stopped")
    file_faces = of(events, "franck", FaceObservationEvent)
    during = [e for e in file_faces if outage.wall_time < e.wall_time < back.wall_time]
    assert len(during) >= 2, "the file was scored while the camera was away"
    file_frames = [e.frame_index for e in file_faces]
    assert file_frames == sorted(set(file_frames))
    assert of(events, "franck", TrackSummaryEvent)

    # fqm report reads the run folder (JSONL only: it has no Kafka input).
    from monitor.delivery.jsonl_sink import stream_dir_name
    from monitor.report.reader import read_run

    html = tmp_path / "report.html"
    report = subprocess.run(
        [FQM, "report", str(out), "-o", str(html)],
        capture_output=True,
        text=True,
        timeout=300,
        env=_environ(),
    )
    assert report.returncode == 0, report.stderr
    page = html.read_text()
    assert "<img " in page
    streams = {s.stream_id: s for s in read_run(out).streams}
    assert set(streams) == {rtsp, "franck"}
    assert streams[rtsp].folder == stream_dir_name(rtsp)
    assert streams[rtsp].health.reconnects >= 1
    assert streams["franck"].health.reconnects == 0
    for s in streams.values():
        assert s.tracks
        assert all(t.shots for t in s.tracks)  # every track shown with its best crop
        assert s.issues == ()


def _lines(out: Path) -> Iterator[bytes]:
    for path in sorted(out.glob("*/*.jsonl")):
        yield from path.read_bytes().splitlines()


# ---- 10,000 frames, flat memory -------------------------------------------------------------

#: Frames in the long run, and what its face stage analyses of them (24 fps video).
LONG_FRAMES = 10_000
ANALYSE_FPS = 5
#: The loop's length: 20 s of franck.mp4 at 320x240, encoded once, then copied 21 times.
LOOP_FRAMES = 480
#: Frames read before memory is looked at: the engine, MediaPipe's graphs, the decoder's
#: pools and the batcher are all up after the first scored face (frame ~10); RSS was flat
#: from frame ~300 in the runs measured (see the test), so 2,000 leaves a wide margin.
WARMUP_FRAMES = 2_000
#: RSS growth allowed after warm-up, in MiB, both between the halves' peaks and along the
#: fitted line. Measured: peaks within ~10 MiB of each other (allocator noise: samples
#: move by +/-8 MiB from one second to the next). What it catches: one 320x240 RGB frame is
#: 225 KiB and one aligned face 768 KiB, so keeping a frame per scored face (~160 in a half)
#: or an aligned face per 20 scored faces already exceeds it; so does 10 KiB per frame read.
MAX_GROWTH_MB = 30.0


def _last_line(path: Path) -> bytes | None:
    """The last complete line of ``path`` (it may be growing), or None."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 8192))
            tail = f.read()
    except FileNotFoundError:
        return None
    lines = tail[: tail.rfind(b"\n") + 1].splitlines()
    return lines[-1] if lines else None


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_ten_thousand_frames_keep_memory_flat(tmp_path: Path) -> None:
    """A 10,000-frame file (320x240, franck looped), analysed at 5 fps: the process's RSS,
    sampled every second from /proc, does not grow once warm: the second half's peak is
    within MAX_GROWTH_MB of the first half's, and so is the fitted line over both halves.
    The face stays in view through the loops, so one track lives the whole run: the worst
    case for per-track state."""
    base, clip = tmp_path / "base.mp4", tmp_path / "loop.mp4"
    ffmpeg = ("ffmpeg", "-v", "error", "-y")
    encode = ("-vf", "scale=320:240", "-c:v", "libx264", "-preset", "ultrafast", "-g", "48")
    source = ("-i", str(asset_path("franck.mp4")), "-frames:v", str(LOOP_FRAMES), "-an")
    subprocess.run(
        [*ffmpeg, *source, *encode, "-pix_fmt", "yuv420p", str(base)], check=True, timeout=300
    )
    loop = ("-stream_loop", "-1", "-i", str(base), "-frames:v", str(LONG_FRAMES), "-an")
    subprocess.run([*ffmpeg, *loop, "-c", "copy", str(clip)], check=True, timeout=300)
    out = tmp_path / "out"
    args = [str(clip), *TINY, "--out", str(out), "--analyse-fps", str(ANALYSE_FPS)]
    run = FqmRun(args, tmp_path / "err.txt")
    sampler = RssSampler(run.proc.pid, interval_s=1.0)
    sampler.start()
    faces, status = out / "loop" / "fqm.faces.jsonl", out / "loop" / "fqm.status.jsonl"
    marks: dict[int, float] = {}
    try:

        def progress() -> bool:
            line = _last_line(faces)
            frame = -1 if line is None else json.loads(line)["frame_index"]
            for mark in (WARMUP_FRAMES, (WARMUP_FRAMES + LONG_FRAMES) // 2):
                if frame >= mark:
                    marks.setdefault(mark, time.monotonic())
            end = _last_line(status)
            return end is not None and json.loads(end)["state"] == "down"

        # The whole file: ~150 s on a loaded 2-core machine; a deadline, not a speed check.
        wait_until("the end of the file", progress, STARTUP_S + 1200, run)
        t_end = time.monotonic()
        rc = run.proc.wait(SHUTDOWN_DEADLINE_S + EXIT_SLACK_S)
    finally:
        sampler.stop()
        run.kill()
    assert rc == 0, run.stderr
    last = json.loads(_last_line(status))
    assert (last["state"], last["reason"]) == ("down", "end of stream")
    last_face = json.loads(_last_line(faces))
    # Faces are scored once per second of video (24 frames): the last one shows the run read
    # the file to its end, all 10,000 frames.
    assert last_face["frame_index"] >= LONG_FRAMES - 2 * 24

    t_warm, t_mid = marks[WARMUP_FRAMES], marks[(WARMUP_FRAMES + LONG_FRAMES) // 2]
    first, second = sampler.between(t_warm, t_mid), sampler.between(t_mid, t_end)
    assert len(first) >= 5, "too few samples"
    assert len(second) >= 5, "too few samples"
    steady = [(t, mb) for t, mb in sampler.samples if t_warm <= t <= t_end]
    trend = _slope(steady) * (t_end - t_warm)
    peak_all = max(mb for _, mb in sampler.samples)
    print(
        f"RSS MiB: start-up peak {peak_all:.0f}; warm (frames {WARMUP_FRAMES}-"
        f"{(WARMUP_FRAMES + LONG_FRAMES) // 2}) {min(first):.1f}-{max(first):.1f} over "
        f"{t_mid - t_warm:.0f} s; second half {min(second):.1f}-{max(second):.1f} over "
        f"{t_end - t_mid:.0f} s; fitted trend {trend:+.1f} MiB; {len(sampler.samples)} samples"
    )
    assert max(second) - max(first) < MAX_GROWTH_MB
    assert trend < MAX_GROWTH_MB
