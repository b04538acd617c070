"""``fqm doctor``: which parts of fqm are usable on this machine, and why not when they are not.

Every check imports or opens the real thing (a model file is loaded, a broker is asked for its
topics), because "installed" is not "usable": a wheel can import and still lack its native
libraries, a model file can be present and corrupt.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

from monitor.kafka_bootstrap import Bootstrap, check_reachable
from pipelines.urls import mask_url


@dataclass(frozen=True)
class Check:
    """The outcome of one check.

    Attributes:
        part: what was checked, e.g. ``"PyAV"``.
        ok: whether the part is usable.
        detail: version and capabilities when usable; the exact reason (and fix) when not.
        required: a required part that fails makes ``fqm doctor`` exit non-zero; optional parts
            (GPU, TensorRT, GStreamer) only narrow what fqm can do.
    """

    part: str
    ok: bool
    detail: str
    required: bool


class Unusable(Exception):
    """A part is not usable here; the message is the whole reason (and the fix)."""


def _reason(exc: BaseException) -> str:
    """Our own verdicts as they are; a library's exception with its type and first line, once
    (Kafka errors already start with their type)."""
    lines = str(exc).strip().splitlines()
    text, name = (lines[0] if lines else ""), type(exc).__name__
    if isinstance(exc, Unusable):
        return text
    return text if text.startswith(name) else f"{name}: {text}".rstrip(": ")


def check_python() -> str:
    return f"{platform.python_version()} ({sys.executable})"


def check_pyav() -> str:
    import av

    missing = [c for c in ("h264", "hevc", "mpeg4", "vp9") if c not in av.codecs_available]
    if missing:
        raise Unusable(f"FFmpeg in PyAV lacks decoders: {', '.join(missing)}")
    hw = av.codec.hwaccel.hwdevices_available()
    return (
        f"av {av.__version__}, FFmpeg {av.ffmpeg_version_info}; hwaccel built in: {', '.join(hw)}"
    )


def check_gstreamer() -> str:
    from pipelines.gstreamer import load_gst

    Gst = load_gst()
    needed = ["uridecodebin", "rtspsrc", "appsink", "videoconvert", "avdec_h264"]
    absent = [e for e in needed if Gst.ElementFactory.find(e) is None]
    if absent:
        raise Unusable(f"GStreamer {Gst.version_string()} lacks elements: {', '.join(absent)}")
    nv = [e for e in ("nvh264dec", "nvv4l2decoder") if Gst.ElementFactory.find(e) is not None]
    return f"{Gst.version_string()}; NVIDIA decoders: {', '.join(nv) or 'none'}"


def check_mediapipe() -> str:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    from monitor.assets import asset_path
    from monitor.native_logs import quiet_native_logs

    model = asset_path("face_detection_short_range.tflite")
    options = vision.FaceDetectorOptions(base_options=BaseOptions(model_asset_path=str(model)))
    with quiet_native_logs(), vision.FaceDetector.create_from_options(options):
        pass
    return f"mediapipe {mp.__version__}; face detector loads from {model.parent}"


def check_torch() -> str:
    import torch

    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        devices = f"CUDA {torch.version.cuda}: {', '.join(names)}"
    else:
        devices = "CPU only (no CUDA device visible)"
    return f"torch {torch.__version__}; {devices}; {torch.get_num_threads()} CPU threads"


def check_cuda() -> str:
    import torch

    if not torch.cuda.is_available():
        built = torch.version.cuda or "none"
        raise Unusable(f"no CUDA device visible to torch (built for CUDA {built})")
    return ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))


def check_onnxruntime() -> str:
    import onnxruntime as ort

    return f"onnxruntime {ort.__version__}; providers: {', '.join(ort.get_available_providers())}"


def check_tensorrt() -> str:
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise Unusable(
            "TensorRT is not installed (it comes from NVIDIA's package index or NVIDIA's "
            "TensorRT container, see docker-compose.yml's gpu profile)"
        ) from exc
    return f"tensorrt {trt.__version__}"


def check_ffmpeg_cli() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise Unusable("ffmpeg CLI not found (apt-get install ffmpeg); only benchmarks need it")
    out = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=10).stdout
    return out.splitlines()[0] if out else exe


def check_kafka_client() -> str:
    import crc32c
    import kafka

    return f"kafka-python {kafka.__version__}; crc32c {crc32c.__version__} (fast checksums)"


def kafka_check(bootstrap: Bootstrap | None, timeout_s: float = 10.0) -> Callable[[], str]:
    """A check that asks the brokers at ``bootstrap`` for their metadata.

    Without a bootstrap it fails with the way to configure one: events then go to local
    files, which is fine, but the report says so rather than nothing.
    """

    def check() -> str:
        if bootstrap is None:
            raise Unusable(
                "no broker configured (--kafka-bootstrap HOST:PORT or FQM_KAFKA_BOOTSTRAP)"
            )
        from kafka import KafkaAdminClient

        check_reachable(bootstrap, timeout_s)
        admin = KafkaAdminClient(
            client_id="fqm-doctor",
            request_timeout_ms=int(timeout_s * 1000),
            bootstrap_timeout_ms=int(timeout_s * 1000),
            **bootstrap.client_kwargs(),
        )
        try:
            cluster = admin.describe_cluster()
            topics = admin.list_topics()
        finally:
            admin.close()
        return f"{len(cluster['brokers'])} broker(s) at {bootstrap}; {len(topics)} topic(s)"

    return check


def run_checks(
    kafka_bootstrap: Bootstrap | None = None, kafka_timeout_s: float = 10.0
) -> list[Check]:
    """Run every check; none raises, each failure becomes a ``Check`` with its reason.

    The Kafka broker is required only when one is configured.
    """
    checks: list[tuple[str, Callable[[], str], bool]] = [
        ("Python", check_python, True),
        ("PyAV (FFmpeg)", check_pyav, True),
        ("GStreamer (PyGObject)", check_gstreamer, False),
        ("MediaPipe + model files", check_mediapipe, True),
        ("PyTorch", check_torch, True),
        ("CUDA device", check_cuda, False),
        ("ONNX Runtime", check_onnxruntime, True),
        ("TensorRT", check_tensorrt, False),
        ("ffmpeg CLI", check_ffmpeg_cli, False),
        ("Kafka client", check_kafka_client, True),
        (
            "Kafka broker",
            kafka_check(kafka_bootstrap, kafka_timeout_s),
            kafka_bootstrap is not None,
        ),
    ]
    results = []
    for part, fn, required in checks:
        try:
            results.append(Check(part, True, fn(), required))
        except Exception as exc:
            results.append(Check(part, False, mask_url(_reason(exc)), required))
    return results


def format_table(results: list[Check]) -> str:
    width = max(len(c.part) for c in results)
    lines = []
    for c in results:
        status = "ok" if c.ok else ("FAIL" if c.required else "absent")
        lines.append(f"{c.part:<{width}}  {status:<6}  {c.detail}")
    return "\n".join(lines)
