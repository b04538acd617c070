"""The model-variant registry and the seeded random (benchmark) weights."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch

from engines.dataset import read_image_rgb
from engines.dslfiqa.config import ModelConfig
from engines.dslfiqa.constants import CROP_SIZE, IMAGE_SIZE, NORM_MEAN, NORM_STD
from engines.dslfiqa.model import DslFiqa, crop_size_of
from engines.dslfiqa.random_weights import build_random, random_state_dicts
from engines.dslfiqa.variants import (
    VARIANTS,
    ModelVariant,
    UnknownVariantError,
    get_variant,
    list_variants,
    variant_for_config,
)
from monitor.assets import asset_path
from tests.support.dslfiqa_fixture import read_manifest
from tests.support.faces import center_square_512, generic_landmarks68

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return center_square_512(read_image_rgb(asset_path("grace_hopper_512x512.jpg")))


# ------------------------------------------------------------------------------- registry
def test_registered_variants() -> None:
    assert list_variants() == ["dslfiqa", "dslfiqa-tiny", "dslfiqa-lite"]
    assert [get_variant(n).arch for n in list_variants()] == ["dslfiqa", "dslfiqa", "lite"]


# The official module tree (DslFiqa); dslfiqa-lite's contract: tests/test_lite_model.py.
@pytest.mark.parametrize("name", [n for n, v in VARIANTS.items() if v.arch == "dslfiqa"])
def test_contract_is_consistent_with_the_config(name: str) -> None:
    v = get_variant(name)
    assert v.name == name
    assert v.inconsistencies() == []
    assert (v.image_size, v.crop_size) == (v.config.image_size, v.config.crop_size)
    assert v.input_size == IMAGE_SIZE  # every variant scores the aligned 512 face
    assert v.crop_size < v.image_size <= v.input_size
    assert v.color_order == "RGB"
    assert v.checkpoint_files == ("DE.pt", "IQA.pt")
    assert v.license
    assert v.description
    with torch.device("meta"):
        iqa = v.config.build_iqa()
    assert crop_size_of(iqa) == v.crop_size
    # A model built from the variant's config carries the variant's sizes.
    with torch.device("meta"):
        model = DslFiqa(v.config.build_de(), iqa, config=v.config)
    assert (model.image_size, model.crop_size) == (v.image_size, v.crop_size)


def test_official_contract_is_the_protocol() -> None:
    v = get_variant("dslfiqa")
    assert (v.image_size, v.crop_size, v.max_offset) == (IMAGE_SIZE, CROP_SIZE, 128)
    assert v.mean == (NORM_MEAN,) * 3 == (0.5, 0.5, 0.5)
    assert v.std == (NORM_STD,) * 3
    assert v.config == ModelConfig.official()
    assert "upstream" in v.license
    assert set(v.crop_modes) == {"official", "fixed5", "center"}


def test_an_inconsistent_variant_is_refused() -> None:
    v = get_variant("dslfiqa-tiny")
    with pytest.raises(ValueError, match=r"crop_size 128 != config\.crop_size 64"):
        dataclasses.replace(v, crop_size=128)
    with pytest.raises(ValueError, match="unknown crop modes"):
        dataclasses.replace(v, crop_modes=("official", "zoom"))


def test_unknown_variant_names_the_known_ones() -> None:
    with pytest.raises(
        UnknownVariantError, match=r"'dslfiqa-huge'.*dslfiqa, dslfiqa-tiny, dslfiqa-lite"
    ):
        get_variant("dslfiqa-huge")
    assert issubclass(UnknownVariantError, ValueError)
    v = get_variant("dslfiqa")
    assert get_variant(v) is v


def test_variant_for_config() -> None:
    assert variant_for_config(ModelConfig.tiny()).name == "dslfiqa-tiny"
    assert variant_for_config(ModelConfig.official()).name == "dslfiqa"
    custom = dataclasses.replace(ModelConfig.tiny(), name="mine", embed_dim=48)
    v = variant_for_config(custom)
    assert v.name == "custom:mine"
    assert v.config == custom
    assert isinstance(v, ModelVariant)


def test_registry_and_config_import_without_torch() -> None:
    code = (
        "import sys\n"
        "from engines.dslfiqa.variants import get_variant\n"
        "from engines.dslfiqa.config import ModelConfig\n"
        "assert get_variant('dslfiqa').crop_size == 384\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_model_config_is_still_importable_from_training() -> None:
    from engines.dslfiqa.training import ModelConfig as FromPackage
    from engines.dslfiqa.training.config import ModelConfig as FromModule

    assert FromPackage is FromModule is ModelConfig


def test_model_refuses_a_config_of_another_size() -> None:
    tiny = ModelConfig.tiny()
    with torch.device("meta"), pytest.raises(ValueError, match="config=") as err:
        DslFiqa(tiny.build_de(), tiny.build_iqa())  # official config by default
    assert "64-pixel crops" in str(err.value)


# --------------------------------------------------------------------------- random weights
def test_random_official_state_dicts_have_the_checkpoint_layout() -> None:
    de, iqa = random_state_dicts("dslfiqa", seed=0)
    manifest = read_manifest()
    for state, name in ((de, "degradation_Encoder"), (iqa, "IQA")):
        got = {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()}
        assert got == manifest[name]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_random_weights_are_seeded() -> None:
    a_de, a_iqa = random_state_dicts("dslfiqa-tiny", seed=3)
    b_de, b_iqa = random_state_dicts("dslfiqa-tiny", seed=3)
    _, c_iqa = random_state_dicts("dslfiqa-tiny", seed=4)
    for k in a_iqa:
        assert torch.equal(a_iqa[k], b_iqa[k]), k
    for k in a_de:
        assert torch.equal(a_de[k], b_de[k]), k
    assert not torch.equal(a_iqa["conv1.weight"], c_iqa["conv1.weight"])
    # Structural buffers are computed, not drawn.
    key = "swintransformer1.layers.0.blocks.1.attn_mask"
    assert torch.equal(a_iqa[key], c_iqa[key])


@pytest.mark.parametrize("mode", ["official", "fixed5", "center"])
def test_random_tiny_model_scores_a_real_face(face: np.ndarray, mode: str) -> None:
    model = build_random("dslfiqa-tiny", seed=0)
    r = model.score_face(face, generic_landmarks68(), mode=mode)  # type: ignore[arg-type]
    assert np.isfinite(r.crop_scores).all()
    assert r.crop_scores.max() > 0
    # Offsets live in the tiny model's 96-pixel face: [0, 32) for 64-pixel crops.
    assert r.crops_top_left.min() >= 0
    assert r.crops_top_left.max() <= 96 - 64


def test_random_official_model_scores_finite_values(face: np.ndarray) -> None:
    model = build_random("dslfiqa", seed=0)
    assert model.config == ModelConfig.official()
    r = model.score_face(face, generic_landmarks68(), mode="center")
    assert r.crops_top_left.tolist() == [[64, 64]]
    assert np.isfinite(r.score)
    assert 0 < r.score < 10
