"""The installed ``fqm`` console script and ``fqm doctor``, run as a user runs them."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from monitor import __version__

FQM = str(Path(sys.executable).with_name("fqm"))


def fqm(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the installed ``fqm`` as a user would, with no FQM_KAFKA_BOOTSTRAP of the caller's
    (the README's recipe exports one for the test suite) unless a test sets it."""
    environ = {k: v for k, v in os.environ.items() if k != "FQM_KAFKA_BOOTSTRAP"} | env
    return subprocess.run(
        [FQM, *args], capture_output=True, text=True, timeout=timeout, env=environ
    )


def doctor(*args: str, **env: str) -> tuple[int, dict[str, dict]]:
    proc = fqm("doctor", "--json", *args, **env)
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
    assert checks["Kafka client"]["ok"], checks["Kafka client"]
    assert "crc32c" in checks["Kafka client"]["detail"]
    broker = checks["Kafka broker"]
    assert not broker["ok"]
    assert not broker["required"]  # no broker configured: reported, not a failure
    assert "no broker configured" in broker["detail"]


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
    assert checks["Kafka broker"]["ok"], checks["Kafka broker"]["detail"]
    assert "1 broker(s)" in checks["Kafka broker"]["detail"]
    assert code == 0
    # The README's recipe: the same broker through the environment.
    code, checks = doctor(FQM_KAFKA_BOOTSTRAP=kafka_bootstrap)
    assert checks["Kafka broker"]["ok"], checks["Kafka broker"]["detail"]
    assert code == 0


def _free_port() -> int:
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_doctor_fails_fast_on_a_refused_broker() -> None:
    port = _free_port()
    code, checks = doctor("--kafka-bootstrap", f"127.0.0.1:{port}", "--kafka-timeout", "30")
    broker = checks["Kafka broker"]
    assert not broker["ok"]
    assert broker["required"]
    assert f"127.0.0.1:{port}" in broker["detail"]
    assert "refused" in broker["detail"].lower()
    # The refusal itself is reported (kafka-python would retry until the 30 s timeout, then
    # say only "KafkaTimeoutError: Unable to bootstrap").
    assert "KafkaTimeoutError" not in broker["detail"]
    assert code == 1


def test_doctor_times_out_on_a_silent_broker() -> None:
    with socket.socket() as server:  # accepts connections, never answers a Kafka request
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        code, checks = doctor("--kafka-bootstrap", f"127.0.0.1:{port}", "--kafka-timeout", "2")
    assert not checks["Kafka broker"]["ok"]
    assert code == 1


@pytest.mark.parametrize(
    ("bootstrap", "message"),
    [
        ("localhost:abc", "port 'abc' of localhost:abc is not a number"),
        ("localhost", "'localhost' is not HOST:PORT"),
        ("localhost:99999", "outside 1-65535"),
        ("KERBEROS://h:9092", "unknown security protocol"),
        ("a:1,,b:2", "is empty"),
    ],
)
def test_doctor_rejects_a_bad_bootstrap_in_one_line(bootstrap: str, message: str) -> None:
    proc = fqm("doctor", "--kafka-bootstrap", bootstrap)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "ValueError" not in proc.stderr


def test_doctor_never_prints_sasl_credentials() -> None:
    port = _free_port()
    secret = "s3cr/t p@ss"
    for args in (
        ["--kafka-bootstrap", f"SASL_SSL://alice:{secret}@127.0.0.1:{port}"],
        ["--kafka-bootstrap", f"SASL_SSL://alice:{secret}@127.0.0.1:abc"],
        ["--kafka-bootstrap", f"PLAINTEXT://alice:{secret}@127.0.0.1:{port}"],
    ):
        for fmt in ([], ["--json"]):
            proc = fqm("doctor", *fmt, *args, "--kafka-timeout", "1")
            assert proc.returncode != 0
            out = proc.stdout + proc.stderr
            for fragment in ("s3cr", "p@ss", secret):
                assert fragment not in out, out


def test_doctor_output_is_only_the_report() -> None:
    """Loading MediaPipe's model once printed LiteRT INFO lines around the table."""
    proc = fqm("doctor")
    assert proc.stderr.strip() == "", proc.stderr
    assert "INFO:" not in proc.stdout


def test_a_group_help_does_not_import_torch() -> None:
    """The root callback runs for every subcommand: it must stay light (torch costs ~3 s)."""
    code = (
        "import sys; from click.testing import CliRunner; from monitor.cli import cli; "
        "r = CliRunner().invoke(cli, ['bench', '--help']); assert r.exit_code == 0, r.output; "
        "print(sorted(m for m in ('torch', 'mediapipe') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"
