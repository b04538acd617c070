"""The QualityEngine interface, the backend registry, ``auto`` and backend parity.

Parity tolerance (max abs on float32 scores, CPU, against torch fp32 on the same crops):
ONNX Runtime 1e-4 (engines.export.PARITY_ATOL); observed 4.8e-7 for the tiny model on
real aligned faces. The fp16 ONNX export on ONNX Runtime: 5e-3 (FP16_PARITY_ATOL). The
official-size check (``slow``: ONNX export ~60 s, two forwards of one center crop)
observed the same order as fp32. TensorRT is a placeholder here: it must say it is not
installed. torch fp16/bf16, channels-last and CUDA graphs are CUDA-only: the ``gpu`` tests
of tests/test_engines_torch_runtime.py and ``python -m engines.gpu_check`` check them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.backends import (
    AUTO_ORDER,
    BACKENDS,
    BackendConfigError,
    BackendUnavailableError,
    OnnxRuntimeConfig,
    TensorRTConfig,
    TorchConfig,
    choose_backend,
    list_backends,
    open_engine,
)
from engines.dataset import read_image_rgb
from engines.dslfiqa.model import DslFiqa
from engines.dslfiqa.random_weights import build_random
from engines.export import FP16_PARITY_ATOL, PARITY_ATOL
from engines.quality_engine import QualityEngine, QualityScores
from monitor.assets import asset_path
from tests.support.faces import center_square_512, generic_landmarks68

pytestmark = pytest.mark.usefixtures("one_torch_thread")
MODES = ("official", "fixed5", "center")


@pytest.fixture(scope="module")
def faces() -> tuple[np.ndarray, np.ndarray]:
    imgs = [
        center_square_512(read_image_rgb(asset_path(name)))
        for name in ("grace_hopper_512x512.jpg", "astronaut.png")
    ]
    # Move the second layout a little so the faces' landmark vectors differ.
    lms = [generic_landmarks68(), generic_landmarks68() + np.float32(6.0)]
    return np.stack(imgs), np.stack(lms)


@pytest.fixture(scope="module")
def tiny() -> DslFiqa:
    return build_random("dslfiqa-tiny", seed=1)


@pytest.fixture(scope="module")
def tiny_onnx(tiny: DslFiqa, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engines.export import export_onnx

    return export_onnx(tiny, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@pytest.fixture(scope="module")
def tiny_onnx_fp16(tiny: DslFiqa, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engines.export import export_onnx

    return export_onnx(tiny, tmp_path_factory.mktemp("onnx16") / "tiny16.onnx", precision="fp16")


#: Max abs on the scores against torch fp32, per engine of available_engines.
TOLERANCE = {"onnxruntime-fp16": FP16_PARITY_ATOL}


def available_engines(
    tiny: DslFiqa, tiny_onnx: Path, mode: str, tiny_onnx_fp16: Path | None = None
) -> dict[str, QualityEngine]:
    """Every backend that can run here, on the tiny model."""
    out: dict[str, QualityEngine] = {"torch": open_engine(tiny, "torch", mode=mode)}
    out["onnxruntime"] = open_engine(tiny_onnx, "onnxruntime", mode=mode)
    if tiny_onnx_fp16 is not None:
        out["onnxruntime-fp16"] = open_engine(tiny_onnx_fp16, "onnxruntime", mode=mode)
    if BACKENDS["torch"].probe(TorchConfig(device="cuda")) is None:  # pragma: no cover
        out["torch-cuda"] = open_engine(tiny, "torch", mode=mode, config=TorchConfig(device="cuda"))
    return out


# ------------------------------------------------------------------------------ registry
def test_registry_lists_every_backend_with_its_config() -> None:
    assert list_backends() == ["tensorrt", "torch", "onnxruntime"]
    assert BACKENDS["torch"].config_type is TorchConfig
    assert BACKENDS["onnxruntime"].config_type is OnnxRuntimeConfig
    assert BACKENDS["tensorrt"].config_type is TensorRTConfig
    assert [label for label, _, _ in AUTO_ORDER] == [
        "tensorrt",
        "torch cuda",
        "onnxruntime",
        "torch cpu",
    ]


def test_configs_are_frozen_and_checked() -> None:
    cfg = TorchConfig()
    with pytest.raises(AttributeError):
        cfg.device = "cuda"  # type: ignore[misc]
    with pytest.raises(BackendConfigError, match="precision"):
        TorchConfig(precision="fp8")  # type: ignore[arg-type]
    with pytest.raises(BackendConfigError, match="max_batch"):
        OnnxRuntimeConfig(max_batch=0)


def test_tensorrt_placeholder_says_it_is_not_installed(tiny: DslFiqa) -> None:
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:  # pragma: no cover
        pytest.skip("TensorRT is installed here; the placeholder message differs")
    assert "TensorRT is not installed" in (BACKENDS["tensorrt"].probe(TensorRTConfig()) or "")
    with pytest.raises(BackendUnavailableError, match="TensorRT is not installed"):
        open_engine(tiny, "tensorrt")


def test_gpu_only_torch_settings_are_refused_on_cpu(tiny: DslFiqa) -> None:
    for cfg in (
        TorchConfig(precision="fp16"),
        TorchConfig(precision="bf16"),
        TorchConfig(channels_last=True),
        TorchConfig(compile=True),
        TorchConfig(cuda_graphs=True),
    ):
        with pytest.raises(BackendConfigError, match="need a CUDA device"):
            open_engine(tiny, "torch", config=cfg)


def test_wrong_backend_or_config_is_refused(tiny: DslFiqa) -> None:
    with pytest.raises(BackendConfigError, match="unknown backend 'tensorflow'"):
        open_engine(tiny, "tensorflow")
    with pytest.raises(BackendConfigError, match="takes a TorchConfig"):
        open_engine(tiny, "torch", config=OnnxRuntimeConfig())
    with pytest.raises(BackendConfigError, match="auto"):
        open_engine(tiny, "auto", config=TorchConfig())
    with pytest.raises(ValueError, match="unknown crop mode"):
        open_engine(tiny, "torch", mode="corners")


def test_auto_explains_its_choice(tiny: DslFiqa) -> None:
    engine = open_engine(tiny, "auto", mode="center")
    candidates, skipped = choose_backend(tiny)
    first = candidates[0][0]
    assert engine.selection.startswith(f"auto chose {first}")
    assert "order: tensorrt > torch cuda > onnxruntime > torch cpu" in engine.selection
    for reason in skipped:
        assert reason in engine.selection
    import torch

    if not torch.cuda.is_available():
        assert engine.info.backend == "onnxruntime"
        assert "torch cuda: " in engine.selection
        assert "no CUDA device" in engine.selection
    engine.close()


def test_auto_skips_torch_for_an_onnx_file(tiny_onnx: Path) -> None:
    _, skipped = choose_backend(tiny_onnx)
    assert "torch cpu: the source is an ONNX file" in skipped
    engine = open_engine(tiny_onnx, "auto")
    assert engine.info.backend in ("tensorrt", "onnxruntime")


# -------------------------------------------------------------------- interface + parity
@pytest.mark.parametrize("mode", MODES)
def test_every_backend_agrees_with_torch_fp32(
    tiny: DslFiqa,
    tiny_onnx: Path,
    tiny_onnx_fp16: Path,
    faces: tuple[np.ndarray, np.ndarray],
    mode: str,
) -> None:
    images, landmarks = faces
    engines = available_engines(tiny, tiny_onnx, mode, tiny_onnx_fp16)
    results: dict[str, QualityScores] = {
        name: e.score_faces(images, landmarks, rng=20) for name, e in engines.items()
    }
    ref = results["torch"]
    k = {"official": 20, "fixed5": 5, "center": 1}[mode]
    assert ref.crop_scores.shape == (2, k)
    assert ref.crops_top_left.shape == (2, k, 2)
    for name, got in results.items():
        assert isinstance(engines[name], QualityEngine)
        assert got.info.variant == "dslfiqa-tiny"
        assert got.info.mode == mode
        assert got[1].backend == engines[name].info.backend
        np.testing.assert_array_equal(got.crops_top_left, ref.crops_top_left)
        dev = float(np.abs(got.crop_scores - ref.crop_scores).max())
        print(f"{mode} {name}: max |score - torch fp32| = {dev:.2e}")
        assert dev <= TOLERANCE.get(name, PARITY_ATOL), name
    assert results["onnxruntime"].info.backend == "onnxruntime"
    assert results["onnxruntime-fp16"].info.precision == "fp16"
    for e in engines.values():
        e.close()


@pytest.mark.parametrize("mode", MODES)
def test_engine_matches_score_face(
    tiny: DslFiqa, faces: tuple[np.ndarray, np.ndarray], mode: str
) -> None:
    """Preprocessing is the existing one: a batch gives what score_face gives face by face."""
    images, landmarks = faces
    engine = open_engine(tiny, "torch", mode=mode)
    state = np.random.RandomState(20)
    got = engine.score_faces(images, landmarks, rng=np.random.RandomState(20))
    for i in range(2):
        want = tiny.score_face(images[i], landmarks[i], mode=mode, seed=state)  # type: ignore[arg-type]
        assert got[i].score == pytest.approx(want.score, abs=1e-6)
        np.testing.assert_array_equal(got[i].crops_top_left, want.crops_top_left)
        assert got[i].mode == mode
        assert got[i].variant == "dslfiqa-tiny"


def test_official_mode_draws_from_the_engine_rng(
    tiny: DslFiqa, faces: tuple[np.ndarray, np.ndarray]
) -> None:
    images, landmarks = faces
    engine = open_engine(tiny, "torch", mode="official", seed=20)
    first = engine.score_faces(images[:1], landmarks[:1])
    second = engine.score_faces(images[:1], landmarks[:1])  # the stream continues
    assert not np.array_equal(first.crops_top_left, second.crops_top_left)
    again = open_engine(tiny, "torch", mode="official", seed=20).score_faces(
        images[:1], landmarks[:1]
    )
    np.testing.assert_array_equal(first.crops_top_left, again.crops_top_left)


def test_score_crops_and_mode_override(
    tiny: DslFiqa, tiny_onnx: Path, faces: tuple[np.ndarray, np.ndarray]
) -> None:
    from engines.quality_engine import prepare_faces

    images, landmarks = faces
    engine = open_engine(tiny_onnx, "onnxruntime", mode="center")
    prepared = prepare_faces(engine.variant, images, landmarks, "fixed5")
    crops = engine.score_crops(prepared.crops, prepared.vectors)
    out = engine.score_faces(images, landmarks, mode="fixed5")
    assert out.info.mode == "fixed5"
    assert engine.info.mode == "center"
    np.testing.assert_allclose(out.crop_scores.reshape(-1), crops, atol=1e-6)


def test_bad_faces_are_refused(tiny: DslFiqa) -> None:
    engine = open_engine(tiny, "torch")
    with pytest.raises(ValueError, match=r"uint8 RGB \[N,512,512,3\]"):
        engine.score_faces(np.zeros((1, 256, 256, 3), np.uint8), np.zeros((1, 68, 2), np.float32))
    with pytest.raises(ValueError, match="landmarks must be float"):
        engine.score_faces(np.zeros((1, 512, 512, 3), np.uint8), np.zeros((1, 5, 2), np.float32))


def test_temporary_export_is_removed_at_close(tiny: DslFiqa) -> None:
    engine = open_engine(tiny, "onnxruntime")
    path = engine.runtime.path  # type: ignore[attr-defined]
    assert path.is_file()
    engine.close()
    assert not path.exists()
    with pytest.raises(RuntimeError, match="closed"):
        engine.score_crops(np.zeros((1, 3, 64, 64), np.float32), np.zeros((1, 500), np.float32))


@pytest.mark.slow
def test_official_size_onnxruntime_agrees_with_torch(
    faces: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    """One center crop of the official-size random model: ~60 s export + two forwards."""
    model = build_random("dslfiqa", seed=0)
    images, landmarks = faces
    ref = open_engine(model, "torch", mode="center").score_faces(images[:1], landmarks[:1])
    cfg = OnnxRuntimeConfig(onnx_path=str(tmp_path / "dslfiqa.onnx"))
    ort_engine = open_engine(model, "onnxruntime", mode="center", config=cfg)
    got = ort_engine.score_faces(images[:1], landmarks[:1])
    dev = float(np.abs(got.scores - ref.scores).max())
    print(f"official size, center: max |onnxruntime - torch fp32| = {dev:.2e}")
    assert got.info.variant == "dslfiqa"
    assert got.info.backend == "onnxruntime"
    assert dev <= PARITY_ATOL
    ort_engine.close()
