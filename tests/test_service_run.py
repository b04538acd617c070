"""``fqm run`` end to end on real clips, the real face stage and a (tiny, random) engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from monitor.assets import asset_path
from monitor.events import BestFrameEvent, loads, schemas
from tests.support.clips import cut

FQM = str(Path(sys.executable).with_name("fqm"))
TINY = ("--variant", "dslfiqa-tiny")


def fqm(*args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v for k, v in os.environ.items() if k not in ("FQM_KAFKA_BOOTSTRAP", "FQM_WEIGHTS")
    }
    return subprocess.run(
        [FQM, *args], capture_output=True, text=True, timeout=timeout, env=environ | env
    )


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cut(asset_path("franck.mp4"), tmp_path_factory.mktemp("clip") / "franck.mp4", 150)


@pytest.fixture(scope="module")
def validators() -> dict[str, Draft202012Validator]:
    docs = schemas.load_all()
    registry = Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc)) for doc in docs.values()
    )
    return {k: Draft202012Validator(docs[k], registry=registry) for k in schemas.KINDS}


def read_events(out: Path, validators) -> list:
    events = []
    for path in sorted(out.glob("*/*.jsonl")):
        for line in path.read_text().splitlines():
            doc = json.loads(line)  # every line is complete JSON
            errors = list(validators[doc["kind"]].iter_errors(doc))
            assert errors == [], (path, errors)
            events.append(loads(line))
    return events


def check_stream(out: Path, stream: str, events: list) -> None:
    mine = [e for e in events if e.stream_id == stream]
    kinds = {e.kind for e in mine}
    assert {"face_observation", "best_frame", "track_summary", "stream_status"} <= kinds
    for e in mine:
        if isinstance(e, BestFrameEvent):
            jpeg = (out / stream / "crops" / f"{e.crop.crop_id}.jpg").read_bytes()
            assert jpeg[:2] == b"\xff\xd8"
            assert len(jpeg) == e.crop.size_bytes
        if hasattr(e, "quality"):
            assert e.quality.variant == "dslfiqa-tiny-random"


def test_run_a_file_writes_valid_events_and_crops(clip: Path, tmp_path: Path, validators) -> None:
    out = tmp_path / "out"
    proc = fqm("run", str(clip), *TINY, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "MEANINGLESS" in proc.stderr
    assert "1 streams, 150 frames" in proc.stderr
    check_stream(out, "franck", read_events(out, validators))


def test_two_files_share_one_engine(clip: Path, tmp_path: Path, validators) -> None:
    other = tmp_path / "other.mp4"
    other.write_bytes(clip.read_bytes())
    out = tmp_path / "out"
    proc = fqm("run", str(clip), str(other), *TINY, "--out", str(out), "--max-frames", "90")
    assert proc.returncode == 0, proc.stderr
    assert "2 streams, 180 frames" in proc.stderr
    events = read_events(out, validators)
    check_stream(out, "franck", events)
    check_stream(out, "other", events)


def test_sigterm_drains_and_exits_0(clip: Path, tmp_path: Path, validators) -> None:
    out = tmp_path / "out"
    environ = {k: v for k, v in os.environ.items() if k != "FQM_KAFKA_BOOTSTRAP"}
    long_source = asset_path("franck.mp4")  # 200 s of video: still running when stopped
    proc = subprocess.Popen(
        [FQM, "run", str(long_source), str(long_source), *TINY, "--out", str(out)],
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    )
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        reader = _collect(proc.stderr, lines)
        _wait_for(lambda: len(list(out.glob("*/*faces*.jsonl"))) == 2, "both streams' faces")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=300) == 0, "".join(lines)
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    rest = "".join(lines)
    assert "stopping" in rest
    events = read_events(out, validators)  # complete JSON lines, all valid
    assert any(e.kind == "track_summary" for e in events)


@pytest.mark.kafka
def test_run_to_kafka(clip: Path, tmp_path: Path, kafka_bootstrap: str) -> None:
    from monitor.delivery.consumer import EventConsumer
    from monitor.events import Topics

    prefix = f"fqm-run-{uuid.uuid4().hex[:8]}"
    proc = fqm(
        "run",
        str(clip),
        *TINY,
        "--out",
        str(tmp_path / "out"),
        "--max-frames",
        "60",
        "--topics-prefix",
        prefix,
        FQM_KAFKA_BOOTSTRAP=kafka_bootstrap,
    )
    assert proc.returncode == 0, proc.stderr
    assert not list((tmp_path / "out").glob("*/*.jsonl"))
    deadline = time.monotonic() + 90
    got: list = []
    with EventConsumer.from_kafka(
        kafka_bootstrap, Topics.prefixed(prefix), from_beginning=True
    ) as consumer:
        while time.monotonic() < deadline and not {
            "face_observation",
            "best_frame",
            "track_summary",
        } <= {e.kind for e in got}:
            got += list(consumer.events(timeout_s=5))
        best = [e for e in got if isinstance(e, BestFrameEvent)]
        list(consumer.events(timeout_s=2))
        assert best
        assert consumer.crop_for(best[0]) is not None
    assert {"face_observation", "best_frame", "track_summary"} <= {e.kind for e in got}


def test_service_imports_no_click() -> None:
    from tests.test_architecture import imports

    names = [n for _f, _l, n in imports("monitor/service")]
    assert not [n for n in names if n == "click" or n.startswith(("click.", "monitor.cli"))]


def _collect(stream, lines: list[str]) -> threading.Thread:
    thread = threading.Thread(target=lambda: lines.extend(stream), daemon=True)
    thread.start()
    return thread


def _wait_for(predicate, what: str, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_sighup_reloads_only_what_changed_and_a_bad_file_changes_nothing(
    clip: Path, tmp_path: Path, validators
) -> None:
    out = tmp_path / "out"
    fleet = tmp_path / "fleet.yaml"
    long_source = asset_path("franck.mp4")  # 200 s of video: runs until stopped
    lobby = f"  lobby: {{source: {long_source}, analyse_fps: 5}}\n"
    fleet.write_text(f"out: {out}\nmodel: {{variant: dslfiqa-tiny}}\ncameras:\n{lobby}")
    environ = {k: v for k, v in os.environ.items() if k not in ("FQM_KAFKA_BOOTSTRAP",)}
    proc = subprocess.Popen(
        [FQM, "run", "--config", str(fleet)], stderr=subprocess.PIPE, text=True, env=environ
    )
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        reader = _collect(proc.stderr, lines)
        _wait_for(lambda: list(out.glob("lobby/*.jsonl")), "lobby's first events")
        fleet.write_text(fleet.read_text() + "  door: {sourc: x}\n")  # a typo: refused
        proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: any("stays in force" in x for x in lines), "the refused reload")
        assert any("cameras.door.sourc" in x for x in lines), "".join(lines)
        fleet.write_text(fleet.read_text().replace("{sourc: x}", f"{{source: {clip}}}"))
        proc.send_signal(signal.SIGHUP)

        def door_ended() -> bool:
            return any("track_summary" in p.read_text() for p in out.glob("door/*.jsonl"))

        _wait_for(door_ended, "the added camera's track summary")
        assert any("added ['door'], removed [], restarted []" in x for x in lines)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0, "".join(lines)
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    events = read_events(out, validators)
    check_stream(out, "door", events)
    lobby_status = [e for e in events if e.stream_id == "lobby" and e.kind == "stream_status"]
    assert [e.state for e in lobby_status] == ["up", "down"]  # never restarted by the reloads
    assert lobby_status[-1].reason == "stopped"


def test_metrics_and_health_are_served_while_it_runs(clip: Path, tmp_path: Path) -> None:
    import re
    import urllib.error
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    environ = {k: v for k, v in os.environ.items() if k != "FQM_KAFKA_BOOTSTRAP"}
    long_source = asset_path("franck.mp4")
    proc = subprocess.Popen(
        [
            FQM,
            "run",
            str(long_source),
            *TINY,
            "--out",
            str(tmp_path / "out"),
            "--metrics-port",
            "0",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    )
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        reader = _collect(proc.stderr, lines)
        _wait_for(lambda: any("metrics and health on" in x for x in lines), "the server")
        url = re.search(r"(http://\S+) \(", "".join(lines)).group(1)

        def get(path: str) -> tuple[int, str]:
            try:
                with urllib.request.urlopen(url + path, timeout=10) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()

        def frames_read() -> float:
            text = get("/metrics")[1]
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == "fqm_stream_frames_total":
                        return sample.value
            return 0.0

        _wait_for(lambda: frames_read() > 10, "frames counted in /metrics")
        status, body = get("/healthz")
        assert status == 200, body
        status, body = get("/readyz")
        assert status == 200, body  # the file is up, the JSONL sink delivers
        assert json.loads(body)["status"] == "ready"
        assert 'fqm_stage_seconds_bucket{le="0.005",stage="faces"}' in get("/metrics")[1]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0, "".join(lines)
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_without_weights_it_scores_with_the_shipped_model(
    clip: Path, tmp_path: Path, validators
) -> None:
    out = tmp_path / "out"
    proc = fqm("run", str(clip), "--out", str(out), "--max-frames", "60")
    assert proc.returncode == 0, proc.stderr
    assert "MEANINGLESS" not in proc.stderr
    assert "model dslfiqa-lite (torch, center)" in proc.stderr
    scored = [e for e in read_events(out, validators) if e.kind == "face_observation"]
    assert scored
    assert {e.quality.variant for e in scored} == {"dslfiqa-lite"}
    assert all(0.0 < e.quality.score < 2.0 for e in scored)
