"""``python -m engines.gpu_check``: what of it can run without a GPU.

On this CPU host: the arguments, the FLOP arithmetic against DSL-FIQA's cost notes (section
8), the report and table writers, the clean skip without CUDA (with the reason), and the
whole flow on the tiny variant with ``--device cpu`` (fp32 eager; the CUDA cases are
listed as skipped), including a part that fails and a budget that runs out. The GPU run
itself is documented in docs/engines.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engines import flops, gpu_check
from engines.dslfiqa.constants import NUM_FACE_LANDMARKS

CPU_ARGS = [
    "--device", "cpu", "--variant", "dslfiqa-tiny", "--batches", "1", "--subset", "1",
    "--fp32-batches", "1,2", "--parity-crops", "2", "--min-time-s", "0", "--min-iters", "2",
    "--max-iters", "2",
]  # fmt: skip


def test_arguments_and_their_defaults() -> None:
    args = gpu_check.build_parser().parse_args([])
    assert args.batches == (1, 2, 4, 8, 16, 32, 64, 128)
    assert args.device == "cuda"
    assert args.variant == "dslfiqa"
    assert args.budget_s == gpu_check.DEFAULT_BUDGET_S < 480  # the run must end in < 8 min
    args = gpu_check.build_parser().parse_args(["--batches", "8,1,8", "--skip", "timing"])
    assert args.batches == (1, 8)
    assert args.skip == ["timing"]
    for bad in (["--batches", "0,4"], ["--batches", "x"], ["--skip", "everything"]):
        with pytest.raises(SystemExit):
            gpu_check.build_parser().parse_args(bad)


def test_flop_arithmetic_matches_dsl_fiqa_cost_notes() -> None:
    # Section 8: DE 44.0 G + IQA 216.8 G = ~261 GFLOP per 384 crop; ~5.2 TFLOP per image of
    # 20 crops.
    assert abs(flops.OFFICIAL_GFLOP_PER_CROP - (44.0 + 216.8)) < 0.5
    assert flops.gflop_per_face("official") / 1e3 == pytest.approx(5.2, abs=0.05)
    assert flops.gflop_per_face("fixed5") == 5 * 261.0
    assert flops.gflop_per_face("center") == 261.0
    # Issue 10: 50 % of the H100/H200 FLOP-bound limit is about 1,900 crops/s.
    limit = flops.flop_bound_crops_per_s(261.0, flops.peak_tflops("NVIDIA H200", "fp16"))
    assert limit / 2 == pytest.approx(1900, rel=0.01)
    # 1,500 center faces/s is 1,500 crops/s: 39.6 % of an H100 SXM's dense fp16 peak.
    frac = flops.flop_fraction(1500, 1.0, 261.0, flops.peak_tflops("NVIDIA H100 80GB HBM3", "fp16"))
    assert frac == pytest.approx(1500 * 261 / 989e3)
    with pytest.raises(ValueError, match="unknown crop mode"):
        flops.crops_per_face("corners")


def test_timing_row_derives_faces_per_mode_and_the_fraction() -> None:
    prep = {"center": 2.0, "fixed5": 2.0, "official": 4.0}  # ms per face
    row = gpu_check.timing_row(
        "fp16", "eager", 32, [0.02, 0.02, 0.04, 0.02], 1234.0, 261.0, 989.0, prep
    )
    crops_per_s = 32 / 0.025
    assert row["crops_per_s"] == pytest.approx(crops_per_s)
    assert row["p50_ms"] == pytest.approx(20.0)
    assert 20.0 < row["p99_ms"] <= 40.0
    assert row["faces_per_s"] == pytest.approx(
        {"center": crops_per_s, "fixed5": crops_per_s / 5, "official": crops_per_s / 20}
    )
    # End to end: forward time per face + preparation per face, one after the other.
    assert row["e2e_faces_per_s"]["official"] == pytest.approx(1 / (20 / crops_per_s + 0.004))
    assert row["flop_fraction"] == pytest.approx(crops_per_s * 261 / 989e3)
    no_peak = gpu_check.timing_row("fp32", "eager", 1, [0.5], None, 261.0, None, {})
    assert no_peak["flop_fraction"] is None
    assert no_peak["e2e_faces_per_s"] == {}


def test_report_writes_json_and_markdown_tables(tmp_path: Path) -> None:
    report = gpu_check.Report(json_path=tmp_path / "r.json", markdown_path=tmp_path / "r.md")
    report.environment.update(device_name="NVIDIA H200", capability="9.0", torch="2.x")
    report.parity.append(
        {"backend": "torch", "precision": "bf16", "options": "cuda_graphs[1, 8]", "crops": 6,
         "max_abs_diff": 0.03, "tolerance": 0.02, "ok": False}
    )  # fmt: skip
    report.parity.append(
        {"backend": "torch", "precision": "fp16", "options": "eager", "error": "error: OOM"}
    )
    report.timing.append(
        gpu_check.timing_row("fp16", "cuda_graphs", 64, [0.04], 900.0, 261.0, 989.0, {})
    )
    report.timing.append({"precision": "fp32", "options": "eager", "batch": 8, "skipped": "time"})
    report.goals = gpu_check.goals(report)
    report.save()
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["parity"][0]["ok"] is False
    assert doc["goals"]["center_faces_per_s"] == pytest.approx(1600)
    assert doc["goals"]["center_goal_met"] is True
    assert doc["goals"]["official_fp16_goal_met"] is False  # 1,600 crops/s is 42 %
    md = (tmp_path / "r.md").read_text()
    assert "| torch | bf16 | cuda_graphs[1, 8] | 6 | 3.00e-02 | 2e-02 | NO |" in md
    assert "| torch | fp16 | eager | | | | error: OOM |" in md
    assert (
        "| fp16 | cuda_graphs | 64 | 1,600.0 | 40.00 | 40.00 | 900 | 42.2 | 1,600.0 (n/a) |" in md
    )
    assert "| fp32 | eager | 8 | time |" in md


def test_without_cuda_it_skips_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "skip.json"
    assert gpu_check.main(["--json", str(out), "--markdown", str(tmp_path / "s.md")]) == 0
    doc = json.loads(out.read_text())
    assert doc["status"] == "skipped"
    assert doc["reason"].startswith("no CUDA device visible to torch")
    assert doc["parts"] == {}  # nothing ran
    assert json.loads(capsys.readouterr().out)["status"] == "skipped"
    assert "Status: skipped (no CUDA device" in (tmp_path / "s.md").read_text()
    assert gpu_check.main(["--require-cuda"]) == 2


def test_synthetic_faces_look_like_aligned_faces() -> None:
    images, landmarks = gpu_check.synthetic_faces(3, seed=1)
    assert images.shape == (3, 512, 512, 3)
    assert images.dtype == np.uint8
    assert landmarks.shape == (3, NUM_FACE_LANDMARKS, 2)
    assert ((landmarks > 100) & (landmarks < 412)).all()
    assert not np.array_equal(images[0], images[1])  # each face its own tones and noise
    assert images.std() > 20  # not a flat image


@pytest.mark.usefixtures("one_torch_thread")
def test_cpu_run_of_the_tiny_variant_records_every_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(ctx: gpu_check.Context) -> None:
        raise RuntimeError("boom")

    monkeypatch.setitem(gpu_check.PARTS, "onnxruntime", broken)
    out = tmp_path / "cpu.json"
    assert gpu_check.main([*CPU_ARGS, "--json", str(out)]) == 1  # the broken part fails it
    doc = json.loads(out.read_text())
    assert doc["status"] == "failed"
    assert doc["parts"]["onnxruntime"] == "error: RuntimeError: boom"
    assert doc["parts"]["parity"] == "ok"
    assert doc["parts"]["timing"] == "ok"  # it ran before the broken part; tensorrt after it
    assert doc["parts"]["tensorrt"].startswith(("skipped", "ok"))
    fp32 = [r for r in doc["parity"] if r["precision"] == "fp32" and "max_abs_diff" in r]
    assert [r["options"] for r in fp32] == ["eager"]
    assert fp32[0]["max_abs_diff"] <= gpu_check.TOLERANCES["fp32"]
    assert {r["skipped"] for r in doc["parity"] if "skipped" in r} == {
        "skipped: needs a CUDA device"
    }
    timed = [r for r in doc["timing"] if "crops_per_s" in r]
    assert [(r["precision"], r["options"], r["batch"]) for r in timed] == [
        ("fp32", "eager", 1),
        ("fp32", "eager", 2),
    ]
    for r in timed:
        assert r["iters"] == 2
        assert r["crops_per_s"] > 0
        assert r["flop_fraction"] is None  # no peak for a CPU
        assert set(r["faces_per_s"]) == set(gpu_check.MODES)
    assert doc["environment"]["gflop_source"].startswith("torch FlopCounterMode")


@pytest.mark.usefixtures("one_torch_thread")
def test_a_spent_budget_skips_the_cases_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    code = gpu_check.main([*CPU_ARGS, "--budget-s", "1", "--skip", "tensorrt", "--json", str(out)])
    doc = json.loads(out.read_text())
    assert code == 0
    assert doc["parts"]["tensorrt"] == "skipped: --skip"
    ran = [r for r in doc["parity"] + doc["timing"] if "max_abs_diff" in r or "crops_per_s" in r]
    assert ran == []
    assert any("time budget" in r.get("skipped", "") for r in doc["timing"])


def test_bench_faces_npz_is_what_the_check_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """monitor writes the real faces (save_bench_faces); engines reads them (load_faces)."""
    from monitor.benchmarks import quality

    images, landmarks = gpu_check.synthetic_faces(2, seed=3)
    fake = [quality.BenchFace(f"face{i}", images[i], landmarks[i]) for i in range(2)]
    monkeypatch.setattr(quality, "sample_aligned_faces", lambda n: fake[:n])
    path = quality.save_bench_faces(tmp_path / "sub" / "faces.npz", 2)
    got_images, got_landmarks, label = gpu_check.load_faces(path)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_landmarks, landmarks)
    assert got_landmarks.dtype == np.float32
    assert label == "2 aligned faces from faces.npz ['face0', 'face1']"
    _, _, synthetic = gpu_check.load_faces(None)
    assert synthetic.startswith("4 synthetic face-like images")
