"""``fqm bench modes`` and its faces: real stills and video frames through ``PhotoAligner``.

Without --weights the model is random, so scores mean nothing; what is checked is that the bench
takes aligned faces from the bundled media and reports every crop mode. A face costs 25 crop
forwards (~2-3 s each on the 2-core CPU host), hence ``slow``.

``fqm bench quality --backend`` runs the tiny variant (``--variant dslfiqa-tiny``): the tests
check the report's structure and the one-line errors of what cannot run here, never timings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from monitor.benchmarks.quality import STILLS, VIDEOS, sample_aligned_faces

FQM = str(Path(sys.executable).with_name("fqm"))


@pytest.mark.slow
def test_bench_faces_are_aligned_faces_from_stills_then_every_video() -> None:
    faces = sample_aligned_faces(len(STILLS) + len(VIDEOS))
    labels = [f.label for f in faces]
    assert labels[: len(STILLS)] == list(STILLS)
    # One frame from each video (in VIDEOS order), numbered by its frame index.
    assert [label.split("#")[0] for label in labels[len(STILLS) :]] == list(VIDEOS)
    assert all(label.split("#")[1].isdigit() for label in labels[len(STILLS) :])
    for face in faces:
        assert face.image.shape == (512, 512, 3)
        assert face.image.dtype == np.uint8
        assert face.landmarks.shape == (68, 2)
        assert face.landmarks.dtype == np.float32
        # The official alignment centres the face: its points average inside [128, 384], the
        # area every crop sees (single points of a face cut by the photo's edge, as in the
        # 112x112 Tom_Hanks still, may fall outside the aligned image).
        assert ((face.landmarks.mean(axis=0) > 128) & (face.landmarks.mean(axis=0) < 384)).all()


@pytest.mark.slow
def test_bench_modes_one_face_json_reports_all_three_modes() -> None:
    proc = subprocess.run(
        [FQM, "bench", "modes", "--faces", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert "random" in report["weights"]  # the random-weights caveat travels with it
    (face,) = report["faces"]
    assert face["label"] == STILLS[0]
    for mode in ("official", "fixed5", "center"):
        assert np.isfinite(face[mode])
    assert face["official_crop_std"] > 0
    agreement = report["agreement_with_official"]
    assert set(agreement) == {"fixed5", "center", "official"}
    for mode in ("fixed5", "center"):
        # One face: no correlation, but the differences are defined.
        assert agreement[mode]["srcc"] is None
        assert agreement[mode]["plcc"] is None
        assert agreement[mode]["mean_abs_diff"] == pytest.approx(abs(face[mode] - face["official"]))
    assert agreement["official"]["score_std_across_faces"] is None


# ---------------------------------------------------------------- fqm bench quality --backend


def _bench_quality(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FQM, "bench", "quality", "--variant", "dslfiqa-tiny", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


RUN_KEYS = {
    "procedure",
    "backend",
    "precision",
    "device",
    "mode",
    "batch",
    "faces",
    "crops",
    "seconds",
    "batches",
    "faces_per_s",
    "crops_per_s",
    "ms_per_face",
    "batch_ms_p50",
    "batch_ms_p99",
    "peak_rss_mb",
    "cuda_peak_mb",
    "flop_fraction",
    "speedup_vs_official_naive",
}


@pytest.mark.parametrize(
    ("backend", "precision", "device"),
    [
        ("onnxruntime", "fp32", "CPUExecutionProvider"),
        ("onnxruntime", "fp16", "CPUExecutionProvider"),
        ("torch", "fp32", "cpu"),
    ],
)
def test_bench_quality_backend_json_reports_speed_latency_and_memory(
    backend: str, precision: str, device: str
) -> None:
    proc = _bench_quality(
        "--backend", backend, "--precision", precision, "--faces", "1", "--naive-faces", "0",
        "--batch", "1", "--batch", "2", "--mode", "fixed5", "--threads", "1", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["backend"] == backend
    assert report["selection"] == f"{backend} requested"
    assert report["engine"] == {
        "variant": "dslfiqa-tiny",
        "mode": "fixed5",
        "backend": backend,
        "device": device,
        "precision": precision,
    }
    assert report["variant"] == "dslfiqa-tiny"
    assert report["threads"] == 1  # torch's
    assert report["torch_options"]["threads"] == 1  # ONNX Runtime's intra_op_threads
    assert report["torch_options"]["batches"] == [1, 2]
    assert report["cuda_graph_sizes"] == []
    assert report["gflop_per_crop"] > 0
    assert "FlopCounterMode" in report["gflop_source"]
    assert report["gpu"] is None
    assert report["peak_tflops"] is None
    assert report["peak_source"].startswith("NVIDIA datasheets")
    assert report["official_naive"] is None
    runs = report["runs"]
    assert [(r["batch"], r["mode"]) for r in runs] == [(1, "fixed5"), (2, "fixed5")]
    for r in runs:
        assert set(r) == RUN_KEYS
        assert (r["backend"], r["precision"], r["faces"], r["crops"]) == (
            backend,
            precision,
            1,
            5,
        )
        assert r["batches"] == -(-5 // r["batch"])
        assert 0 < r["batch_ms_p50"] <= r["batch_ms_p99"]
        assert r["faces_per_s"] > 0
        assert r["peak_rss_mb"] > 0
        assert r["cuda_peak_mb"] is None  # CPU
        assert r["flop_fraction"] is None  # no GPU
        assert r["speedup_vs_official_naive"] is None


@pytest.mark.slow
def test_bench_quality_auto_says_what_it_chose_and_keeps_the_naive_baseline() -> None:
    proc = _bench_quality("--backend", "auto", "--faces", "1", "--naive-faces", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["selection"].startswith("auto chose ")
    assert "skipped: tensorrt: " in report["selection"]
    assert report["official_naive"]["crops"] == 20
    assert report["runs"][0]["speedup_vs_official_naive"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--backend", "tensorrt"), "Error: TensorRT "),
        (("--backend", "torch", "--precision", "fp16"), "Error: torch on cpu: precision=fp16"),
        (("--backend", "onnxruntime", "--precision", "bf16"), "Error: onnxruntime: precision"),
        (("--backend", "torch", "--cuda-graphs"), "Error: torch on cpu: cuda_graphs need a CUDA"),
        (("--backend", "torch", "--channels-last"), "Error: torch on cpu: channels_last need"),
    ],
)
def test_bench_quality_unavailable_backend_is_one_clear_line(
    args: tuple[str, ...], message: str
) -> None:
    proc = _bench_quality(*args, "--faces", "1", "--naive-faces", "0")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(message)
    assert "Traceback" not in proc.stderr


def test_cli_choices_match_the_engines() -> None:
    from engines.backends import PRECISIONS
    from engines.dslfiqa.variants import get_variant, list_variants
    from monitor.benchmarks.quality import QUALITY_BACKENDS as BENCH_BACKENDS
    from monitor.cli.bench import QUALITY_BACKENDS, QUALITY_PRECISIONS, QUALITY_VARIANTS

    assert QUALITY_BACKENDS == BENCH_BACKENDS
    assert QUALITY_PRECISIONS == PRECISIONS
    # bench quality's random weights exist for the official module tree (not yet dslfiqa-lite)
    assert list(QUALITY_VARIANTS) == [
        v for v in list_variants() if get_variant(v).arch == "dslfiqa"
    ]


def test_peak_tflops_matches_the_most_specific_card_name() -> None:
    from monitor.benchmarks.quality import peak_tflops

    assert peak_tflops("NVIDIA H200", "fp16") == 989.0
    assert peak_tflops("NVIDIA H100 PCIe", "fp16") == 756.0
    assert peak_tflops("NVIDIA H100 80GB HBM3", "bf16") == 989.0
    assert peak_tflops("NVIDIA A100-SXM4-80GB", "fp32") == 19.5
    assert peak_tflops("NVIDIA A10", "fp16") == 125.0
    assert peak_tflops("Tesla T4", "bf16") is None  # no bf16 tensor cores
    assert peak_tflops("Some Future GPU", "fp16") is None
    assert peak_tflops(None, "fp16") is None


def test_bench_torch_engine_is_sized_by_the_largest_batch() -> None:
    """A timed forward of --batch crops is one forward: max_batch covers the largest batch."""
    from engines.dslfiqa.random_weights import build_random
    from monitor.benchmarks.quality import TorchOptions, open_bench_engine

    model = build_random("dslfiqa-tiny", seed=0)
    opened = open_bench_engine(
        model, "torch", "fp32", "cpu", "center", TorchOptions(batches=(2, 16))
    )
    assert opened.engine.max_batch == 16
    assert opened.selection == "torch requested"
    opened.close()
    default = open_bench_engine(model, "torch", "fp32", "cpu", "center")
    assert default.engine.max_batch == 8  # engines.backends.DEFAULT_MAX_BATCH
    default.close()


def test_bench_flop_arithmetic_is_the_engines_one() -> None:
    from engines import flops
    from monitor.benchmarks import quality

    assert quality.PEAK_TFLOPS is flops.PEAK_TFLOPS
    assert quality.OFFICIAL_GFLOP_PER_CROP == flops.OFFICIAL_GFLOP_PER_CROP == 261.0
