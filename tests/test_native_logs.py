"""Native MediaPipe/LiteRT log lines: gone by default, back with verbose, nothing else lost."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from monitor import native_logs
from monitor.native_logs import NOISE, OnceNoise, quiet_native_logs

REPO = Path(__file__).resolve().parents[1]

# Builds the real detectors (both models) and landmarker and runs them on a real still and
# ten frames of a real clip; then closes the detector (MediaPipe prints on close too).
SCRIPT = textwrap.dedent(
    """
    import sys

    import av

    from monitor.assets import asset_path
    from monitor.native_logs import configure_native_logs

    configure_native_logs(verbose={verbose})
    from monitor.faces.detector import FaceDetector
    from monitor.faces.landmarks import FaceLandmarker

    images = []
    with av.open(str(asset_path("grace_hopper_512x512.jpg"))) as c:
        images.append(next(c.decode(video=0)).to_ndarray(format="rgb24"))
    with av.open(str(asset_path("franck.mp4"))) as c:
        for i, frame in enumerate(c.decode(video=0)):
            images.append(frame.to_ndarray(format="rgb24"))
            if i == 9:
                break
    landmarker = FaceLandmarker()
    found = 0
    with FaceDetector("both") as detector:
        for image in images:
            faces = detector.faces(detector.detect(image))
            found += len(landmarker.landmarks(image, faces.xyxy, faces.keypoints))
    sys.stderr.write("python stderr still works\\n")
    print("faces", found)
    """
)

# What the libraries print (measured with mediapipe 1.2.3 and ai-edge-litert 2.3.0).
XNNPACK_LINE = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
LITERT_ENV_LINE = "INFO: [environment.cc"
ABSL_WARNING = "W0000 "  # absl's prefix before InitGoogle: severity W, no date
ABSL_BANNER = "WARNING: Logging before InitGoogle() is written to STDERR"


def run_faces(verbose: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in native_logs.QUIET_ENVIRONMENT}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(verbose=verbose)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[1] != "0"  # faces were really found and meshed
    assert "python stderr still works" in done.stderr
    return done


def test_face_models_print_nothing_native_by_default() -> None:
    stderr = run_faces(verbose=False).stderr
    for line in (XNNPACK_LINE, LITERT_ENV_LINE, ABSL_WARNING, ABSL_BANNER, "INFO: "):
        assert line not in stderr, stderr
    assert stderr.strip() == "python stderr still works"


def test_verbose_lets_the_native_lines_through() -> None:
    stderr = run_faces(verbose=True).stderr
    assert XNNPACK_LINE in stderr
    assert LITERT_ENV_LINE in stderr
    # MediaPipe warns once per process, on the first inference whose tensor is not 64-byte
    # aligned; measured on the first or second of these 12 inferences in every run.
    assert ABSL_WARNING in stderr
    assert "not aligned" in stderr


def test_quiet_block_drops_noise_and_keeps_everything_else(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with quiet_native_logs():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"W0000 00:00:1796200906.276973   13493 runner.cc:1] chatter\n")
        os.write(2, b"E0000 00:00:1796200906.276973   13493 runner.cc:2] a real error\n")
        with quiet_native_logs():  # nested: one capture
            print("python text", file=sys.stderr)
        os.write(2, b"something else\n")
    err = capfd.readouterr().err
    # (Sorted: under pytest, sys.stderr is pytest's own stream, not fd 2, so its text is
    # not held back with the native lines.)
    assert sorted(err.splitlines()) == [
        "E0000 00:00:1796200906.276973   13493 runner.cc:2] a real error",
        "python text",
        "something else",
    ]


def test_quiet_block_restores_stderr_when_the_block_raises(
    capfd: pytest.CaptureFixture[str],
) -> None:
    def load() -> None:
        with quiet_native_logs():
            os.write(2, b"F0000 00:00:1.2 7 model.cc:9] why the model failed\n")
            raise RuntimeError("model failed")

    with pytest.raises(RuntimeError, match="model failed"):
        load()
    os.write(2, b"after\n")
    assert capfd.readouterr().err.splitlines() == [
        "F0000 00:00:1.2 7 model.cc:9] why the model failed",
        "after",
    ]


def test_verbose_switch_turns_the_quiet_block_into_a_no_op(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(native_logs, "_verbose", True)
    with quiet_native_logs():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    assert capfd.readouterr().err == XNNPACK_LINE + "\n"


def test_once_noise_quiets_calls_only_until_its_line_went_by(
    capfd: pytest.CaptureFixture[str],
) -> None:
    once = OnceNoise(b"one-time chatter", max_calls=5)
    with once.around():
        os.write(2, b"INFO: unrelated\n")
    with once.around():
        os.write(2, b"W0000 00:00:1.5 7 x.cc:1] one-time chatter\n")
    assert (once.calls, once.seen) == (2, True)
    with once.around():  # runs bare now
        os.write(2, b"INFO: shown\n")
    assert capfd.readouterr().err == "INFO: shown\n"
    never = OnceNoise(b"never printed", max_calls=2)
    for _ in range(3):
        with never.around():
            os.write(2, b"INFO: x\n")
    assert capfd.readouterr().err == "INFO: x\n"  # the third call ran bare


def test_noise_pattern_matches_the_measured_lines_only() -> None:
    assert NOISE.match(XNNPACK_LINE.encode())
    assert NOISE.match(ABSL_BANNER.encode())
    assert NOISE.match(
        b"W0000 00:00:1796200906.276973   13493 inference_runner_litert.cc:1433] Input "
        b"tensor memory is not aligned"
    )
    assert not NOISE.match(b"E0000 00:00:1796200906.276973   13493 x.cc:1] error")
    assert not NOISE.match(b"INFO:root:a Python logging line")
