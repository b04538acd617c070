"""DSL-FIQA-Lite training data: degradation families, label calibration, metrics, trainer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.dslfiqa.training.degradations import laplacian_variance
from engines.dslfiqa.training.lite_data import (
    FAMILIES,
    Calibration,
    calibrate,
    degrade,
    impostor_cosine,
)
from engines.dslfiqa.training.lite_train import (
    LiteTrainConfig,
    ladder_metrics,
    rank_loss,
    train_lite,
)
from tests.support.faces import generic_landmarks68

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def face() -> tuple[np.ndarray, np.ndarray]:
    """A 256 'face': a textured picture (detail at every scale) and 68 landmarks."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256]
    base = 128 + 60 * np.sin(xx / 7.0) * np.cos(yy / 11.0)
    img = np.clip(base[..., None] + rng.normal(0, 20, (256, 256, 3)), 0, 255).astype(np.uint8)
    return img, generic_landmarks68() / 2


# --------------------------------------------------------------------------- families
@pytest.mark.parametrize("family", FAMILIES)
def test_level_zero_is_the_clean_face_and_levels_are_deterministic(face, family: str) -> None:
    img, lm = face
    assert np.array_equal(degrade(img, lm, family, 0.0, seed=1), img)
    a = degrade(img, lm, family, 0.7, seed=3)
    assert a.shape == img.shape
    assert a.dtype == np.uint8
    assert np.array_equal(a, degrade(img, lm, family, 0.7, seed=3))
    assert not np.array_equal(a, img)


@pytest.mark.parametrize("family", ["defocus", "motion", "downscale"])
def test_blur_families_remove_more_detail_at_higher_levels(face, family: str) -> None:
    img, lm = face
    sharp = [laplacian_variance(degrade(img, lm, family, s, seed=0)) for s in (0.2, 0.5, 1.0)]
    assert sharp[0] > sharp[1] > sharp[2]


def test_noise_exposure_and_occlusion_grow_with_the_level(face) -> None:
    img, lm = face
    dev = [np.abs(degrade(img, lm, "noise", s, 0).astype(float) - img).mean() for s in (0.2, 1)]
    assert dev[0] < dev[1]
    dark = [degrade(img, lm, "underexposure", s, 0).mean() for s in (0.2, 0.6, 1.0)]
    assert dark[0] > dark[1] > dark[2]
    clipped = [(degrade(img, lm, "overexposure", s, 0) == 255).mean() for s in (0.2, 1.0)]
    assert clipped[0] < clipped[1]
    changed = [(degrade(img, lm, "occlusion", s, 5) != img).any(-1).mean() for s in (0.1, 1.0)]
    assert changed[0] < changed[1]


def test_unknown_family_and_bad_level_are_refused(face) -> None:
    img, lm = face
    with pytest.raises(ValueError, match="choose one of"):
        degrade(img, lm, "sepia", 0.5, 0)
    with pytest.raises(ValueError, match="level must be in"):
        degrade(img, lm, "noise", 1.5, 0)


# ------------------------------------------------------------------------------ labels
def _calibration() -> Calibration:
    rng = np.random.default_rng(0)
    fams = np.repeat(np.array(FAMILIES), 40)
    levels = rng.uniform(0.02, 1, len(fams))
    harm = np.array([0.3 if f == "defocus" else 0.05 for f in fams])
    cos = 1 - harm * levels + rng.normal(0, 0.01, len(fams))
    return calibrate(fams, levels, cos, impostor_cos=0.6)


def test_calibrated_severity_is_monotone_and_scaled_by_harm() -> None:
    cal = _calibration()
    grid = np.linspace(0, 1, 21)
    for f in FAMILIES:
        sev = cal.severity(f, grid)
        assert sev[0] == 0
        assert np.all(np.diff(sev) >= 0), f
        assert 0 < sev[-1] <= 1
    # Equal levels: the family that hurts recognition more is more severe.
    assert cal.severity("defocus", np.array(0.8)) > cal.severity("noise", np.array(0.8))


def test_labels_are_one_for_identity_and_fall_with_recognisability() -> None:
    cal = _calibration()
    assert cal.recognisability(np.array(1.0)) == 1.0
    assert cal.recognisability(np.array(0.6)) == 0.0  # an impostor's similarity
    hi = cal.label("defocus", np.array(0.5), np.array(0.95))
    lo = cal.label("defocus", np.array(0.5), np.array(0.80))
    assert 0 <= lo < hi <= 1
    json.dumps(cal.to_dict())  # the calibration is stored as JSON


def test_impostor_cosine_compares_different_identities_only() -> None:
    rng = np.random.default_rng(0)
    a = [np.array([1.0, 0.0])] * 3
    b = [np.array([0.6, 0.8])] * 3
    assert impostor_cosine({"a": a, "b": b}, rng) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="two identities"):
        impostor_cosine({"a": a}, rng)


# ----------------------------------------------------------------------------- metrics
def _ladder() -> dict[str, np.ndarray]:
    levels = [0.0, 0.3, 0.6, 1.0, 0.3, 0.6, 1.0]
    fams = ["clean", "noise", "noise", "noise", "jpeg", "jpeg", "jpeg"]
    return {
        "family": np.array(fams * 2 + ["real-h264"]),
        "level": np.array(levels * 2 + [1.0]),
        "face": np.array(["a"] * 7 + ["b"] * 8),
    }


def test_ladder_metrics_reward_scores_that_fall_with_severity() -> None:
    ladder = _ladder()
    good = 1 - ladder["level"]
    m = ladder_metrics(good, ladder)
    assert m["noise"] == m["jpeg"] == m["mean"] == pytest.approx(1.0)
    assert m["real_pair"] == 1.0  # face b: clean (1.0) above its real twin (0.0)
    assert ladder_metrics(-good, ladder)["mean"] == pytest.approx(-1.0)


def test_rank_loss_is_zero_only_for_correctly_ordered_pairs_of_one_face() -> None:
    target = torch.tensor([1.0, 0.5, 0.0, 1.0])
    group = torch.tensor([0, 0, 0, 1])
    ordered = torch.tensor([0.9, 0.5, 0.1, 0.0])  # the other face's score is not compared
    assert rank_loss(ordered, target, group, margin=0.05, gap=0.03) == 0
    assert rank_loss(ordered.flip(0), target, group, margin=0.05, gap=0.03) > 0


# ----------------------------------------------------------------------------- trainer
def test_train_lite_writes_loadable_weights_and_a_log(tmp_path: Path) -> None:
    from engines.dslfiqa.lite import load_lite

    rng = np.random.default_rng(0)
    n = 14
    lm = np.tile(generic_landmarks68()[None] * 144 / 512, (n, 1, 1)).astype(np.float32)
    images = rng.integers(0, 256, (n, 144, 144, 3), dtype=np.uint8)
    np.savez(
        tmp_path / "train.npz",
        images=images,
        landmarks=lm,
        label=rng.random(n).astype(np.float32),
        group=np.repeat(np.arange(2), 7),
    )
    ladder = _ladder()
    np.savez(
        tmp_path / "val.npz",
        images=images[:14],
        landmarks=lm[:14],
        family=ladder["family"][:14],
        level=ladder["level"][:14],
        face=ladder["face"][:14],
    )
    config = LiteTrainConfig(max_steps=2, val_every=1, faces_per_batch=2, threads=1)
    history = train_lite(tmp_path, tmp_path / "out", config)
    assert history["steps_done"] == 2
    assert [v["step"] for v in history["val"]] == [1, 2]
    log = json.loads((tmp_path / "out" / "train_log.json").read_text())
    assert log["best"]["step"] in (1, 2)
    assert load_lite(tmp_path / "out").config == config.model
