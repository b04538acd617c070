"""``fqm bench pipeline`` runs the real service as a user runs it; the report's structure and
invariants on a tiny run (tiny random model, a short clip), never its speeds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.assets import asset_path, assets_dir
from monitor.benchmarks.pipeline import CLIP_720P_NAME
from monitor.service.stream import STAGES
from tests.support.clips import cut

FQM = str(Path(sys.executable).with_name("fqm"))
TINY = ("--variant", "dslfiqa-tiny")


def fqm(*args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v for k, v in os.environ.items() if k not in ("FQM_KAFKA_BOOTSTRAP", "FQM_WEIGHTS")
    }
    return subprocess.run(
        [FQM, "bench", "pipeline", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environ | env,
    )


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 72 frames (3 s at 24 fps) of franck.mp4: one face, a confirmed track, a few scores.
    return cut(asset_path("franck.mp4"), tmp_path_factory.mktemp("clip") / "franck.mp4", 72)


def report_cores() -> int:
    return os.cpu_count() or 1


def check_run(run: dict, streams: int) -> None:
    assert run["streams"] == streams
    assert len(run["per_stream"]) == streams
    assert len({s["stream_id"] for s in run["per_stream"]}) == streams  # each copy its own id
    assert run["wall_s"] > 0
    assert run["clean"] is True
    assert run["held"] == all(s["realtime_factor"] >= 1.0 for s in run["per_stream"])
    assert run["min_realtime_factor"] == min(s["realtime_factor"] for s in run["per_stream"])
    assert run["frames_read"] == sum(s["frames_read"] for s in run["per_stream"])
    assert run["faces_scored"] == sum(s["faces_scored"] for s in run["per_stream"])
    assert run["engine_wall_s"] >= run["wall_s"]
    assert run["faces_scored_per_s"] == pytest.approx(run["faces_scored"] / run["engine_wall_s"])
    assert set(run["stage_cores"]) == set(STAGES)
    assert all(v >= 0 for v in run["stage_cores"].values())
    assert run["engine_batches"] >= 1
    assert run["engine_inference_s"] > 0
    assert run["process_cpu_s"] > 0
    assert run["cpu_share"] > 0
    assert run["peak_rss_mb"] > 50
    assert run["video_s"] == pytest.approx(sum(s["video_s"] for s in run["per_stream"]))
    assert run["cores_per_stream"] == pytest.approx(run["process_cpu_s"] / run["video_s"])
    assert run["streams_estimate"] * run["cores_per_stream"] == pytest.approx(report_cores())
    assert 0 <= run["latency_p50_ms"] <= run["latency_p99_ms"]
    for s in run["per_stream"]:
        assert s["error"] == ""
        assert s["frames_read"] >= s["frames_analysed"] > 0
        assert s["faces_seen"] >= s["faces_looked"] >= s["faces_scored"] > 0
        assert s["faces_dropped"] == 0  # a file waits for the engine, never drops
        assert s["tracks"] >= 1
        assert s["video_s"] > 0
        assert s["wall_s"] > 0
        assert s["drain_s"] >= 0
        assert s["realtime_factor"] == pytest.approx(s["video_s"] / s["wall_s"])
        assert s["fps_read"] >= s["fps_analysed"] > 0
        assert s["events"]["face_observation"] == s["faces_scored"]
        assert s["events"]["stream_status"] == 2  # up and down
        assert s["latency_events"] == s["events"]["face_observation"] + s["events"].get(
            "best_frame", 0
        )
        assert 0 <= s["latency_p50_ms"] <= s["latency_p99_ms"]
        assert set(s["stage_share"]) == {*STAGES, "other"}
        assert all(v >= 0 for v in s["stage_share"].values())
        assert sum(v for k, v in s["stage_share"].items() if k != "other") <= 1.0 + 1e-6
        assert s["held"] == (s["realtime_factor"] >= 1.0)


def test_json_one_then_two_streams(clip: Path) -> None:
    proc = fqm(str(clip), *TINY, "--streams", "1,2", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["source"]["width"] == 360
    assert report["source"]["fps"] == 24
    assert report["model"]["variant"] == "dslfiqa-tiny-random"
    assert report["model"]["random_weights"] is True
    assert report["sink"] == "jsonl"
    assert report["config"]["torch_threads"] == 1
    assert [r["streams"] for r in report["runs"]] == [1, 2]
    for run in report["runs"]:
        check_run(run, run["streams"])
    held = [r["streams"] for r in report["runs"] if r["held"]]
    assert report["max_streams_held"] == max(held, default=0)
    # The 3 s clip is read whole by every stream (well under the default --seconds).
    assert all(s["frames_read"] == 72 for r in report["runs"] for s in r["per_stream"])


def test_table_on_the_builtin_720p_name_and_kept_events(clip: Path, tmp_path: Path) -> None:
    # A made clip in the cache stands for the 720p one (encoding the real one takes minutes).
    cache = tmp_path / "cache"
    (cache / "bench").mkdir(parents=True)
    shutil.copy(clip, cache / "bench" / CLIP_720P_NAME)
    out = tmp_path / "out"
    proc = fqm(
        "720p",
        *TINY,
        "--max-frames",
        "40",
        "--analyse-fps",
        "12",
        "--out",
        str(out),
        FQM_CACHE=str(cache),
        FQM_ASSETS=str(assets_dir()),
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"{CLIP_720P_NAME}: 360x288 24 fps")
    assert "dslfiqa-tiny-random" in lines[0]
    assert "analyse 12 fps" in lines[1]
    assert any(line.split()[:2] in (["1", "yes"], ["1", "no"]) for line in lines)
    assert any(line.startswith("cores busy per stage") for line in lines)
    assert lines[-1].startswith("holds ")
    assert list((out / "1-streams").glob("*/*.jsonl"))  # --out keeps the events


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--streams", "0"), "stream counts >= 1"),
        (("--streams", "1,x"), "stream counts >= 1"),
        (("--sink", "kafka"), "--sink kafka needs --kafka-bootstrap"),
        (("--variant", "nope"), "is not one of"),
    ],
)
def test_usage_errors(clip: Path, args: tuple[str, ...], message: str) -> None:
    proc = fqm(str(clip), *args, timeout=120)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_a_live_source_or_a_missing_file_is_refused(tmp_path: Path) -> None:
    proc = fqm("rtsp://user:secret@cam.example/stream", timeout=120)
    assert proc.returncode == 2
    assert "paced by its camera" in proc.stderr
    assert "secret" not in proc.stderr
    proc = fqm(str(tmp_path / "nope.mp4"), timeout=120)
    assert proc.returncode == 1
    assert "Error:" in proc.stderr
    assert "not a video file" in proc.stderr


@pytest.mark.kafka
def test_kafka_sink_publishes_and_deletes_its_topics(clip: Path, kafka_bootstrap: str) -> None:
    from kafka import KafkaAdminClient

    proc = fqm(
        str(clip),
        *TINY,
        "--max-frames",
        "30",
        "--sink",
        "kafka",
        "--json",
        FQM_KAFKA_BOOTSTRAP=kafka_bootstrap,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["sink"] == "kafka"
    check_run(report["runs"][0], 1)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="fqm-test")
    try:
        for _ in range(60):  # deletion completes asynchronously on the broker
            left = [t for t in admin.list_topics() if t.startswith("fqm-bench-")]
            if not left:
                break
            time.sleep(0.5)
        assert left == []
    finally:
        admin.close()
