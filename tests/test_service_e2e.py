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
        try:
            return self.proc.wait(SHUTDOWN_DEADLINE_S + EXIT_SLACK_S)
        finally:
            self.kill()

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
    for r in run.records:
        if r.topic == run.topics.crops:
            crop_ids[str(parse_crop(r).crop_id)] += 1
            continue
        e = parse(r)
        if ids[str(e.event_id)] == 0:
            per_stream.setdefault(e.stream_id, Counter())[e.kind] += 1
        ids[str(e.event_id)] += 1
        if isinstance(e, StreamStatusEvent):
            last_status[e.stream_id] = e  # one stream's statuses arrive in order
    duplicates = sum(ids.values()) - len(ids)
    print(f"{len(ids)} events ({duplicates} duplicates), {len(crop_ids)} crops in the broker")
    assert len(ids) == events_said, f"fqm said {events_said} events, the broker has {len(ids)}"
    assert len(crop_ids) == crops_said
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
