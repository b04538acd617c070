"""The CLI's error boundary, as a user meets it: one line, a non-zero exit, no secrets.

Most cases run the installed ``fqm`` script on real bad input (a corrupt video, a broken
checkpoint, an unreachable camera). Only the "bug" case builds a throwaway command, since no
real command is supposed to have one.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner

from engines.dslfiqa.random_weights import random_state_dicts
from monitor.assets import asset_path
from monitor.cli.app import FqmGroup
from tests.support.clips import cut, overwrite, packet_offsets
from tests.test_dataset import make_split

FQM = str(Path(sys.executable).with_name("fqm"))
SECRET = "hunter2"


def fqm(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FQM_DEBUG", "FQM_WEIGHTS")}
    return subprocess.run([FQM, *args], capture_output=True, text=True, timeout=timeout, env=env)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def junk_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("junk") / "junk.mp4"
    path.write_bytes(os.urandom(64 * 1024))
    return path


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Official-format DE.pt / IQA.pt of the tiny variant (random values, fast to run)."""
    folder = tmp_path_factory.mktemp("tiny")
    de, iqa = random_state_dicts("dslfiqa-tiny", seed=1)
    torch.save(dict(de), folder / "DE.pt")
    torch.save(dict(iqa), folder / "IQA.pt")
    return folder


# --- videos ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["bench", "decode"], ["bench", "faces"]])
def test_an_unopenable_video_is_one_line_and_debug_shows_the_traceback(
    command: list[str], junk_video: Path
) -> None:
    line = assert_one_line_error(fqm(*command, str(junk_video)))
    assert "junk.mp4" in line
    debug = fqm("--debug", *command, str(junk_video))
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr
    assert "SourceOpenError" in debug.stderr


def test_bench_faces_opens_the_source_before_loading_models(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A missing video must cost no model loading (it once cost seconds before failing)."""
    import monitor.faces
    from monitor.benchmarks.faces import bench_faces
    from pipelines.errors import SourceOpenError

    built: list[str] = []

    class Recorder:
        def __init__(self, *args: object, **kwargs: object) -> None:
            built.append("detector")

    monkeypatch.setattr(monitor.faces, "FaceDetector", Recorder)
    with pytest.raises(SourceOpenError, match=r"missing\.mp4"):
        bench_faces(tmp_path / "missing.mp4")
    assert built == []


def test_bench_faces_reports_what_it_measured_before_a_decode_failure(tmp_path: Path) -> None:
    clip = cut(asset_path("franck.mp4"), tmp_path / "clip.mp4", 300)
    offsets = packet_offsets(clip)
    bad = overwrite(clip, tmp_path / "bad.mp4", offsets[40], offsets[299] - offsets[40])
    proc = fqm("bench", "faces", str(bad), "--json")
    line = assert_one_line_error(proc)
    assert "stopped after" in line
    assert "bad.mp4" in line
    report = json.loads(proc.stdout)
    assert report["frames"] >= 30  # the good part (40 packets) was measured and printed
    assert report["steps"]["detection"]["calls"] == report["frames"]
    assert "bad.mp4" in report["error"]


# --- options checked before any work ----------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["train", "quality", "--data", ".", "--out", "o"],
        ["train", "degradation", "--data", ".", "--out", "o"],
        ["score", "."],
        ["eval", "."],
        ["bench", "quality"],
        ["bench", "modes"],
    ],
)
def test_a_bad_device_is_refused_while_parsing(args: list[str]) -> None:
    line = assert_one_line_error(fqm(*args, "--device", "banana"), code=2)
    assert "'banana' is not a device" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_refused_while_parsing() -> None:
    line = assert_one_line_error(fqm("bench", "quality", "--device", "cuda"), code=2)
    assert "CUDA" in line


def test_sync_of_a_cuda_device_reaches_torch() -> None:
    """``bench quality --device cuda`` once died of a NameError in its timer's sync."""
    from monitor.benchmarks.quality import _sync

    _sync(torch.device("cpu"))
    if torch.cuda.is_available():
        _sync(torch.device("cuda"))
    else:
        with pytest.raises((RuntimeError, AssertionError)):  # torch: no CUDA here
            _sync(torch.device("cuda"))


@pytest.mark.gpu
def test_bench_quality_runs_on_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    proc = fqm("bench", "quality", "--device", "cuda", "--faces", "1", "--naive-faces", "0")
    assert proc.returncode == 0, proc.stderr


def test_temperature_zero_is_refused() -> None:
    line = assert_one_line_error(
        fqm("train", "degradation", "--data", ".", "--out", "o", "--temperature", "0"), code=2
    )
    assert "--temperature" in line


# --- checkpoints --------------------------------------------------------------------------------


class Foreign:
    """Any class outside torch's allow-list: what a pickled training script's object is."""


def test_a_checkpoint_with_a_foreign_object_never_advises_weights_only_false(
    tmp_path: Path, tiny_weights: Path
) -> None:
    w = tmp_path / "w"
    w.mkdir()
    with open(w / "DE.pt", "wb") as fh:
        pickle.dump({"state_dict": Foreign()}, fh)
    (w / "IQA.pt").symlink_to(tiny_weights / "IQA.pt")
    photo = tmp_path / "photo.png"
    photo.symlink_to(asset_path("astronaut.png"))
    line = assert_one_line_error(fqm("score", str(photo), "--weights", str(w)))
    assert "DE.pt" in line
    assert "weights_only" not in line


# --- fqm score and fqm eval ----------------------------------------------------------------------


def test_score_reports_an_unreadable_image_as_a_row_and_scores_the_rest(
    tmp_path: Path, tiny_weights: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(256))
    (folder / "b_astronaut.png").symlink_to(asset_path("astronaut.png"))
    args = ["score", str(folder), "--weights", str(tiny_weights), "--mode", "center"]
    proc = fqm(*args, "--json")
    line = assert_one_line_error(proc)
    assert "1 of 2 image(s) unreadable" in line
    doc = json.loads(proc.stdout)
    assert doc["model"] == "dslfiqa-tiny"
    assert [Path(u["image"]).name for u in doc["unreadable"]] == ["a_broken.png"]
    assert [Path(f["image"]).name for f in doc["faces"]] == ["b_astronaut.png"]
    table = fqm(*args)
    rows = table.stdout.splitlines()
    assert any(r.startswith("a_broken.png") and "unreadable" in r for r in rows)
    assert any(r.startswith("b_astronaut.png") and "unreadable" not in r for r in rows)


def test_eval_says_why_correlations_are_undefined_before_loading(tmp_path: Path) -> None:
    split = make_split(tmp_path / "s", [("a.png", 1.0), ("b.png", 2.0)])
    # No weights anywhere: the dataset check must come first.
    line = assert_one_line_error(fqm("eval", str(split), "--limit", "1"))
    assert "at least 2 scored images, got 1" in line
    flat = make_split(tmp_path / "flat", [("a.png", 3.0), ("b.png", 3.0)])
    line = assert_one_line_error(fqm("eval", str(flat)))
    assert "every MOS equals 3" in line


# --- secrets ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["bench", "decode"], ["bench", "faces"]])
def test_camera_passwords_never_reach_the_terminal(command: list[str]) -> None:
    url = f"rtsp://admin:{SECRET}@127.0.0.1:{refused_port()}/stream1"
    for args in ([url, "--max-frames", "1"], [url, "--max-frames", "1", "--json"]):
        proc = fqm(*command, *args)
        assert proc.returncode == 1
        assert SECRET not in proc.stdout + proc.stderr
        assert "admin:***@127.0.0.1" in proc.stderr


# --- the boundary itself --------------------------------------------------------------------------


def test_a_bug_is_one_line_saying_so_and_debug_shows_it() -> None:
    @click.group(cls=FqmGroup)
    @click.option("--debug", is_flag=True)
    def group(debug: bool) -> None:
        pass

    @group.command()
    def crash() -> None:
        raise RuntimeError(f"boom at rtsp://admin:{SECRET}@cam/x")

    result = CliRunner().invoke(group, ["crash"])
    assert result.exit_code == 70
    assert "internal error: RuntimeError: boom at rtsp://admin:***@cam/x" in result.stderr
    assert "--debug" in result.stderr
    assert SECRET not in result.output
    debug = CliRunner().invoke(group, ["--debug", "crash"])
    assert isinstance(debug.exception, RuntimeError)


def test_face_commands_keep_native_logs_for_verbose() -> None:
    clip = asset_path("carphone_pristine.mp4")
    quiet = fqm("bench", "faces", str(clip), "--max-frames", "3", "--model", "both")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr.strip() == "", quiet.stderr
    loud = fqm("--verbose", "bench", "faces", str(clip), "--max-frames", "3", "--model", "both")
    assert loud.returncode == 0, loud.stderr
    assert "INFO: " in loud.stderr or "W0000" in loud.stderr
