"""The installed ``fqm`` console script and ``fqm doctor``, run as a user runs them."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from monitor import __version__

FQM = str(Path(sys.executable).with_name("fqm"))


def fqm(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FQM, *args], capture_output=True, text=True, timeout=timeout)


def doctor(*args: str) -> tuple[int, dict[str, dict]]:
    proc = fqm("doctor", "--json", *args)
    report = json.loads(proc.stdout)
    assert report["fqm"] == __version__
    return proc.returncode, {c["part"]: c for c in report["checks"]}


def test_version() -> None:
    proc = fqm("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"fqm, version {__version__}"
    assert __version__ != "0+unknown"


def test_help_lists_subcommands() -> None:
    proc = fqm("--help")
    assert proc.returncode == 0
    for sub in ("doctor", "assets"):
        assert sub in proc.stdout


def test_doctor_tells_the_truth() -> None:
    """Each verdict agrees with an independent probe of the same part on this machine."""
    import torch

    code, checks = doctor()
    for part in ("Python", "PyAV (FFmpeg)", "MediaPipe + model files", "PyTorch", "ONNX Runtime"):
        assert checks[part]["ok"], f"{part}: {checks[part]['detail']}"
    assert code == 0
    assert checks["CUDA device"]["ok"] == torch.cuda.is_available()
    has_trt = importlib.util.find_spec("tensorrt") is not None
    assert checks["TensorRT"]["ok"] == has_trt
    if not has_trt:
        assert "not installed" in checks["TensorRT"]["detail"]
    has_gi = importlib.util.find_spec("gi") is not None
    assert checks["GStreamer (PyGObject)"]["ok"] == has_gi, checks["GStreamer (PyGObject)"]
    assert "Kafka" not in checks  # only checked when a bootstrap is given


def test_doctor_reports_missing_model_files(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FQM_ASSETS", str(tmp_path))  # an empty assets directory
    code, checks = doctor()
    mp = checks["MediaPipe + model files"]
    assert not mp["ok"]
    assert "fqm assets fetch" in mp["detail"]
    assert code == 1


@pytest.mark.kafka
def test_doctor_checks_a_live_broker(kafka_bootstrap: str) -> None:
    code, checks = doctor("--kafka-bootstrap", kafka_bootstrap)
    assert checks["Kafka"]["ok"], checks["Kafka"]["detail"]
    assert "1 broker(s)" in checks["Kafka"]["detail"]
    assert code == 0


def test_doctor_fails_on_an_unreachable_broker() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, checks = doctor("--kafka-bootstrap", f"127.0.0.1:{port}", "--kafka-timeout", "2")
    assert not checks["Kafka"]["ok"]
    assert checks["Kafka"]["detail"].startswith("KafkaTimeoutError: Unable to bootstrap")
    assert code == 1
