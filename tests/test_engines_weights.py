"""engines.weights: finding, reading and loading a weights folder; devices; variant detection."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.dataset import FiqaDataset, read_image_rgb
from engines.dslfiqa.config import MODEL_CONFIG_NAME, ModelConfig
from engines.dslfiqa.preprocess import (
    crop_images,
    crop_offsets,
    landmark_vectors,
    normalize_image,
    resize_face,
)
from engines.dslfiqa.random_weights import random_state_dicts
from engines.dslfiqa.training import QualityTrainConfig, QualityTrainer, load_trained
from engines.dslfiqa.training.checkpoints import save_weights
from engines.weights import (
    WEIGHTS_ENV,
    CheckpointError,
    DeviceError,
    LoadedModel,
    check_device,
    detect_variant,
    load_weights_dir,
    read_checkpoint,
    resolve_weights_dir,
)
from monitor.assets import asset_path
from tests.support.faces import center_square_512, generic_landmarks68
from tests.test_dataset import make_split

TINY = ModelConfig.tiny()
# A mismatch message quotes a few keys and counts the rest: it stays a few lines long.
SHORT_MESSAGE = 500


class Foreign:
    """A class a weights-only load refuses to import."""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    """DE.pt + IQA.pt of the tiny shapes, no model_config.json (as a copied folder)."""
    de, iqa = random_state_dicts("dslfiqa-tiny", seed=1)
    torch.save(de, tmp_path / "DE.pt")
    torch.save(iqa, tmp_path / "IQA.pt")
    return tmp_path


def _no_torch_advice(message: str) -> None:
    assert "weights_only" not in message
    assert "trust" not in message


# ------------------------------------------------------------------------------- folder
def test_no_folder_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    with pytest.raises(CheckpointError, match=f"--weights DIR.*{WEIGHTS_ENV}=DIR"):
        resolve_weights_dir(None)


def test_folder_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    assert resolve_weights_dir(None) == tmp_path
    assert resolve_weights_dir(tmp_path) == tmp_path
    monkeypatch.setenv("MY_WEIGHTS", str(tmp_path / "absent"))
    with pytest.raises(CheckpointError, match=r"MY_WEIGHTS=.*absent is not a folder"):
        resolve_weights_dir(None, env="MY_WEIGHTS")


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"absent is not a folder; it must hold DE\.pt"):
        load_weights_dir(tmp_path / "absent")


def test_missing_file(tiny_dir: Path) -> None:
    (tiny_dir / "IQA.pt").unlink()
    with pytest.raises(CheckpointError, match=r"IQA\.pt does not exist.*official IQA\.pt"):
        load_weights_dir(tiny_dir)


def test_degradation_only_folder_says_what_to_do(tmp_path: Path) -> None:
    """What ``fqm train degradation --tiny`` leaves: DE.pt + model_config.json."""
    save_weights(TINY.build_de(), tmp_path / "DE.pt", TINY)
    with pytest.raises(CheckpointError, match="degradation encoder only") as err:
        load_weights_dir(tmp_path)
    assert "fqm train quality --de" in str(err.value)


# ------------------------------------------------------------------------------- files
def test_truncated_file(tiny_dir: Path) -> None:
    data = (tiny_dir / "DE.pt").read_bytes()
    (tiny_dir / "DE.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"DE\.pt is not a readable PyTorch checkpoint") as e:
        load_weights_dir(tiny_dir)
    assert "download the official DE.pt again" in str(e.value)
    _no_torch_advice(str(e.value))


def test_foreign_global_is_refused_without_torchs_advice(tiny_dir: Path) -> None:
    torch.save({"conv1.weight": torch.zeros(1), "extra": Foreign()}, tiny_dir / "IQA.pt")
    with pytest.raises(CheckpointError, match=r"IQA\.pt is not a plain state_dict") as err:
        read_checkpoint(tiny_dir / "IQA.pt", "IQA")
    message = str(err.value)
    assert "Foreign" in message
    assert "torch.save(model.state_dict()" in message
    _no_torch_advice(message)
    # torch's own message does carry the advice: the test would catch a pass-through.
    with pytest.raises(Exception, match="weights_only"):
        torch.load(tiny_dir / "IQA.pt", weights_only=True)


def test_not_a_state_dict(tiny_dir: Path) -> None:
    torch.save([torch.zeros(2)], tiny_dir / "DE.pt")
    with pytest.raises(CheckpointError, match=r"DE\.pt: expected a state_dict"):
        read_checkpoint(tiny_dir / "DE.pt", "DE")
    torch.save(collections.OrderedDict(a=torch.zeros(1), b=3), tiny_dir / "DE.pt")
    with pytest.raises(CheckpointError, match="'b' is a int, not a tensor"):
        read_checkpoint(tiny_dir / "DE.pt", "DE")


# ------------------------------------------------------------------------------- variants
def test_wrong_shapes_give_a_short_message(tiny_dir: Path) -> None:
    iqa = torch.load(tiny_dir / "IQA.pt", weights_only=True)
    iqa["conv1.weight"] = torch.zeros(3, 3)
    del iqa["fc_score.0.bias"]
    torch.save(iqa, tiny_dir / "IQA.pt")
    with pytest.raises(CheckpointError, match="fit no known model variant") as err:
        load_weights_dir(tiny_dir)
    message = str(err.value)
    assert "closest is 'dslfiqa-tiny': 2 keys differ" in message
    assert "IQA fc_score.0.bias missing" in message
    assert len(message) < SHORT_MESSAGE


def test_requested_variant_mismatch_is_short(tiny_dir: Path) -> None:
    with pytest.raises(CheckpointError, match="do not fit variant 'dslfiqa'") as err:
        load_weights_dir(tiny_dir, variant="dslfiqa")
    message = str(err.value)
    assert "+" in message  # e.g. "406 keys differ (...; +403 more)"
    assert message.count("!=") <= 3
    assert len(message) < SHORT_MESSAGE


def test_variant_detected_from_shapes(tiny_dir: Path) -> None:
    loaded = load_weights_dir(tiny_dir)
    assert isinstance(loaded, LoadedModel)
    assert loaded.variant.name == "dslfiqa-tiny"
    assert loaded.folder == tiny_dir
    assert loaded.model.config == TINY
    assert not loaded.model.training


def test_official_shapes_are_detected_as_dslfiqa() -> None:
    with torch.device("meta"):  # shapes only: no gigabyte of weights
        cfg = ModelConfig.official()
        de, iqa = cfg.build_de().state_dict(), cfg.build_iqa().state_dict()
    assert detect_variant(dict(de), dict(iqa)).name == "dslfiqa"


def test_model_config_file_names_the_variant(tiny_dir: Path) -> None:
    (tiny_dir / MODEL_CONFIG_NAME).write_text(TINY.to_json())
    assert load_weights_dir(tiny_dir).variant.name == "dslfiqa-tiny"
    with pytest.raises(CheckpointError, match="not variant 'dslfiqa'"):
        load_weights_dir(tiny_dir, variant="dslfiqa")
    (tiny_dir / MODEL_CONFIG_NAME).write_text("{not json")
    with pytest.raises(CheckpointError, match="is not a model config"):
        load_weights_dir(tiny_dir)


# ------------------------------------------------------------------------------- devices
@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("banana", "'banana' is not a device; use cpu, cuda or cuda:N"),
        ("mps", "type 'mps' is not supported"),
    ],
)
def test_bad_device_names(device: str, message: str) -> None:
    with pytest.raises(DeviceError, match=message):
        check_device(device)


def test_cpu_devices() -> None:
    assert check_device("cpu") == torch.device("cpu")
    assert check_device(torch.device("cpu")).type == "cpu"
    assert issubclass(DeviceError, ValueError)


def test_cuda_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match=r"'cuda': no CUDA device.*use cpu"):
        check_device("cuda")


def test_cuda_index_out_of_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(DeviceError, match=r"'cuda:7': this machine has 1 CUDA device\(s\)"):
        check_device("cuda:7")
    assert check_device("cuda:0") == torch.device("cuda:0")


def test_device_is_checked_before_reading(tiny_dir: Path) -> None:
    (tiny_dir / "DE.pt").write_bytes(b"garbage")
    with pytest.raises(DeviceError):
        load_weights_dir(tiny_dir, device="banana")


# ------------------------------------------------------------------- trained tiny weights
@pytest.fixture(scope="module")
def trained_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output folder of a real (two-step) tiny quality training run."""
    root = tmp_path_factory.mktemp("train")
    split = make_split(root / "train", [(f"f{i}.png", 10.0 * i) for i in range(4)])
    out = root / "out"
    config = QualityTrainConfig(batch_size=2, lr=1e-3, log_every=0, max_steps=2)
    QualityTrainer(TINY, config, FiqaDataset.from_dir(split), None, out).fit()
    return out


def test_tiny_training_output_loads_and_scores_a_real_face(trained_tiny: Path) -> None:
    loaded = load_weights_dir(trained_tiny)
    assert loaded.variant.name == "dslfiqa-tiny"
    face = center_square_512(read_image_rgb(asset_path("astronaut.png")))
    landmarks = generic_landmarks68()
    result = loaded.model.score_face(face, landmarks, mode="official")
    assert np.isfinite(result.crop_scores).all()
    assert len(result.crop_scores) == 20
    # The same numbers by hand: the 512 face resized to 96, 64-pixel crops, the same weights
    # loaded the training way.
    small, pts = resize_face(face, landmarks, TINY.image_size)
    offsets = crop_offsets("official", 20, image_size=96, crop_size=64)
    np.testing.assert_array_equal(result.crops_top_left, offsets)
    crops = crop_images(normalize_image(small), offsets, 64)
    vectors = landmark_vectors(pts, offsets, 64)
    reference = load_trained(trained_tiny / "DE.pt", trained_tiny / "IQA.pt", TINY)
    expected = reference.score_crops(crops, vectors).numpy()
    np.testing.assert_allclose(result.crop_scores, expected, rtol=0, atol=1e-6)


def test_tiny_training_output_loads_without_its_config(trained_tiny: Path, tmp_path: Path) -> None:
    for name in ("DE.pt", "IQA.pt"):
        (tmp_path / name).write_bytes((trained_tiny / name).read_bytes())
    assert load_weights_dir(tmp_path).variant.name == "dslfiqa-tiny"
