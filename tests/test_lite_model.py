"""DSL-FIQA-Lite: the registered variant, the network, its ONNX export and the shipped weights."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.dslfiqa.lite import (
    DslFiqaLite,
    LiteConfigError,
    export_lite_onnx,
    is_lite_folder,
    load_lite,
    save_lite,
    shipped_weights_dir,
)
from engines.dslfiqa.lite_config import LiteConfig
from engines.dslfiqa.variants import get_variant, variant_for_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model() -> DslFiqaLite:
    torch.manual_seed(0)
    return LiteConfig().build().eval()


# ------------------------------------------------------------------------------ variant
def test_lite_is_a_registered_variant_with_its_contract() -> None:
    v = get_variant("dslfiqa-lite")
    assert v.arch == "lite"
    assert v.inconsistencies() == []
    assert (v.input_size, v.image_size, v.crop_size) == (512, 144, 128)
    assert (v.mean, v.std, v.color_order) == ((0.5,) * 3, (0.5,) * 3, "RGB")
    assert "center" in v.crop_modes
    assert "Apache-2.0" in v.license
    assert variant_for_config(LiteConfig()) is v
    with pytest.raises(ValueError, match="does not match"):
        dataclasses.replace(v, arch="dslfiqa")


def test_registry_still_imports_without_torch() -> None:
    code = (
        "import sys; from engines.dslfiqa.variants import get_variant; "
        "get_variant('dslfiqa-lite'); assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_config_round_trips_and_refuses_other_files() -> None:
    c = LiteConfig()
    assert LiteConfig.from_dict(json.loads(c.to_json())) == c
    with pytest.raises(LiteConfigError, match="not a lite model config"):
        LiteConfig.from_dict({"name": "official", "image_size": 512})
    with pytest.raises(LiteConfigError, match="unknown lite config fields"):
        LiteConfig.from_dict({"arch": "lite", "patch_size": 16})
    with pytest.raises(LiteConfigError, match="multiple of the stride"):
        dataclasses.replace(c, crop_size=120).validate()


# ------------------------------------------------------------------------------ network
def test_forward_scores_any_batch_and_keeps_the_structure(model: DslFiqaLite) -> None:
    c = model.config
    x = torch.rand(3, 3, c.crop_size, c.crop_size) * 2 - 1
    lm = torch.rand(3, 500) * 2 - 1
    with torch.inference_mode():
        out = model(x, lm)
        single = model(x[1:2], lm[1:2])
        tokens = model.de(x)
    assert out.shape == (3,)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(single, out[1:2], rtol=1e-4, atol=1e-5)
    assert tuple(tokens.shape) == (3, *c.de_pool, c.de_dim)  # degradation tokens
    names = {n.split(".")[0] for n, _ in model.iqa.named_children()}
    assert {"backbone", "tablock1", "attn1", "tablock2", "attn2", "decoder"} <= names
    assert {"embed_mlp", "fc_score", "fc_weight"} <= names  # landmark weighting, head


def test_landmarks_change_the_weighting(model: DslFiqaLite) -> None:
    c = model.config
    x = torch.rand(1, 3, c.crop_size, c.crop_size) * 2 - 1
    with torch.inference_mode():
        a = model(x, torch.full((1, 500), -1.0))
        b = model(x, torch.linspace(-1, 1, 500)[None])
    assert not torch.equal(a, b)


def test_save_and_load_round_trip(model: DslFiqaLite, tmp_path: Path) -> None:
    save_lite(model, tmp_path)
    assert is_lite_folder(tmp_path)
    loaded = load_lite(tmp_path)
    x = torch.rand(2, 3, 128, 128) * 2 - 1
    lm = torch.rand(2, 500) * 2 - 1
    torch.testing.assert_close(loaded.score_crops(x, lm), model.score_crops(x, lm))


def test_load_refuses_weights_of_other_sizes(model: DslFiqaLite, tmp_path: Path) -> None:
    save_lite(model, tmp_path)
    wider = dataclasses.replace(model.config, embed_dim=64)
    (tmp_path / "model_config.json").write_text(wider.to_json())
    with pytest.raises(LiteConfigError, match="does not fit"):
        load_lite(tmp_path)


def test_onnx_export_matches_torch_and_runs_in_the_crop_engine(
    model: DslFiqaLite, tmp_path: Path
) -> None:
    from engines.runtimes.onnxruntime import OrtFaceEngine, OrtQualityEngine
    from tests.support.faces import generic_landmarks68

    path = export_lite_onnx(model, tmp_path / "lite.onnx")
    ort = OrtQualityEngine(path, variant="dslfiqa-lite")
    assert ort.variant is get_variant("dslfiqa-lite")
    for b in (1, 3):
        x = np.random.default_rng(b).uniform(-1, 1, (b, 3, 128, 128)).astype(np.float32)
        lm = np.random.default_rng(b).uniform(-1, 1, (b, 500)).astype(np.float32)
        ref = model.score_crops(x, lm).numpy()
        np.testing.assert_allclose(ort.score_crops(x, lm), ref, atol=1e-4)
    # The runtimes' own crop preparation feeds it: aligned 512 faces in, one score each.
    faces = np.random.default_rng(0).integers(0, 256, (2, 512, 512, 3), dtype=np.uint8)
    marks = np.stack([generic_landmarks68()] * 2)
    with OrtFaceEngine(path, variant="dslfiqa-lite", mode="center") as engine:
        out = engine.score_faces(faces, marks)
    expected = [
        model.score_face(f, m, mode="center").score for f, m in zip(faces, marks, strict=True)
    ]
    np.testing.assert_allclose(out.scores, expected, atol=1e-4)
    assert out.info.variant == "dslfiqa-lite"


# ---------------------------------------------------------------------- shipped weights
SHIPPED = shipped_weights_dir()
needs_shipped = pytest.mark.skipif(
    not (SHIPPED / "IQA.pt").is_file(), reason="no shipped dslfiqa-lite weights in this tree"
)


@needs_shipped
def test_shipped_weights_are_small_and_load() -> None:
    size = sum(p.stat().st_size for p in SHIPPED.iterdir() if p.suffix == ".pt")
    assert size < 5_000_000
    assert isinstance(load_lite(), DslFiqaLite)
    log = json.loads((SHIPPED / "train_log.json").read_text())
    assert LiteConfig.from_dict(log["config"]["model"]) == LiteConfig()  # today's default
    metrics = json.loads((SHIPPED / "test_metrics.json").read_text())
    assert set(metrics["all"]) == {"lite", "sharpness"}


@needs_shipped
def test_shipped_model_ranks_a_held_out_face_above_its_degradations() -> None:
    # astronaut.png is a validation identity: never a training face.
    from engines.dataset import read_image_rgb
    from engines.dslfiqa.preprocess import resize_face
    from engines.dslfiqa.training.lite_data import degrade
    from monitor.assets import asset_path
    from monitor.faces.aligner import PhotoAligner

    with PhotoAligner() as aligner:
        face = aligner(read_image_rgb(asset_path("astronaut.png")))[0]
    model = load_lite()
    clean = model.score_face(face.image, face.landmarks).score
    img256, lm256 = resize_face(face.image, face.landmarks, 256)
    for family in ("defocus", "motion", "noise", "downscale", "underexposure"):
        bad = degrade(img256, lm256, family, 1.0, seed=0)
        bad512, _ = resize_face(bad, lm256, 512)
        assert model.score_face(bad512, face.landmarks).score < clean, family


def test_train_lite_command_is_registered() -> None:
    from click.testing import CliRunner

    from monitor.cli.app import cli

    result = CliRunner().invoke(cli, ["train", "lite", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--out", "--work", "--minutes", "--per-face", "--seed", "--threads"):
        assert option in result.output
