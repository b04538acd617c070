"""``fqm score`` / ``fqm eval`` with the real model: fixture weights saved as DE.pt / IQA.pt.

The fixture weights are random, so the scores mean nothing; what is checked is that the CLI
loads official-format files, feeds the model exactly the official crops and landmark vectors,
and reports what the model computed. Small (`center` mode, few faces): a crop costs ~2 s here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import engines
import engines.dslfiqa
from engines import DslFiqa, load_dslfiqa
from engines.dataset import FiqaDataset, read_image_rgb
from engines.dslfiqa.preprocess import (
    crop_images,
    crop_offsets,
    landmark_vector,
    normalize_image,
)
from engines.metrics import plcc, srcc
from monitor import score_cli
from monitor.assets import asset_path
from monitor.bench_quality import center_crop_aligner, center_square_512, generic_landmarks68
from monitor.cli import cli
from tests.support.dslfiqa_fixture import regenerate_weights
from tests.test_dataset import make_split, write_png


@pytest.fixture(scope="module")
def weights_and_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DslFiqa]:
    """A folder with official-format DE.pt and IQA.pt, and the same weights loaded here."""
    folder = tmp_path_factory.mktemp("weights")
    de, iqa = regenerate_weights("DE"), regenerate_weights("IQA")
    torch.save(de, folder / "DE.pt")
    torch.save(iqa, folder / "IQA.pt")
    return folder, load_dslfiqa(de, iqa)


@pytest.fixture(scope="module")
def weights(weights_and_model: tuple[Path, DslFiqa]) -> Path:
    return weights_and_model[0]


@pytest.fixture(scope="module")
def model(weights_and_model: tuple[Path, DslFiqa]) -> DslFiqa:
    return weights_and_model[1]


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def reference_center_score(model: DslFiqa, image: np.ndarray, landmarks: np.ndarray) -> float:
    """The centre crop scored through the model's batch API, built independently of score_face."""
    crop = crop_images(normalize_image(image), np.array([[64, 64]]))
    vec = landmark_vector(landmarks, 64, 64)[None]
    return float(model.score_crops(crop, vec)[0])


# --- errors that need no model run ----------------------------------------------------------


def test_cli_imports_engines_constants_without_torch() -> None:
    # `fqm --help` stays fast: the CLI takes its option lists from engines.dslfiqa.constants,
    # and the engines packages load their torch models only on first use.
    code = (
        "import sys, monitor.cli, engines.dataset, engines.metrics; "
        "print(sorted(m for m in ('torch', 'engines.dslfiqa.model') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"


def test_lazy_engines_exports_resolve() -> None:
    for package in (engines, engines.dslfiqa):
        for name in package.__all__:
            assert getattr(package, name) is not None, name
        assert set(package.__all__) <= set(dir(package))
    assert engines.DslFiqa is engines.dslfiqa.DslFiqa
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = engines.dslfiqa.nope


def test_missing_weights_says_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_split(tmp_path / "s", [("a.png", 1.0)])
    monkeypatch.delenv("FQM_WEIGHTS", raising=False)
    code, _, err = run("score", str(tmp_path / "s"))
    assert code == 1
    assert "pass --weights DIR" in err
    assert "FQM_WEIGHTS" in err
    (tmp_path / "w").mkdir()
    code, _, err = run("score", str(tmp_path / "s"), "--weights", str(tmp_path / "w"))
    assert code == 1
    assert "DE.pt does not exist" in err
    assert "official DE.pt" in err


def test_malformed_checkpoint_is_reported(tmp_path: Path) -> None:
    make_split(tmp_path / "s", [("a.png", 1.0)])
    w = tmp_path / "w"
    w.mkdir()
    (w / "DE.pt").write_bytes(b"\x00garbage, not a torch.save file")
    (w / "IQA.pt").write_bytes(b"")
    code, _, err = run("score", str(tmp_path / "s"), "--weights", str(w))
    assert code == 1
    assert "DE.pt is not a readable PyTorch checkpoint" in err
    assert "download the official DE.pt again" in err
    torch.save([1, 2, 3], w / "DE.pt")  # loads, but is no state_dict
    code, _, err = run("score", str(tmp_path / "s"), "--weights", str(w))
    assert code == 1
    assert "DE.pt: expected a state_dict" in err


def test_checkpoint_with_wrong_keys(tmp_path: Path, weights: Path) -> None:
    make_split(tmp_path / "s", [("a.png", 1.0)])
    w = tmp_path / "w"
    w.mkdir()
    de = torch.load(weights / "DE.pt", weights_only=True)
    del de["E.0.weight"]
    torch.save(de, w / "DE.pt")
    (w / "IQA.pt").symlink_to(weights / "IQA.pt")
    code, _, err = run("score", str(tmp_path / "s"), "--weights", str(w))
    assert code == 1
    assert "DE checkpoint does not match the official architecture" in err
    assert "missing keys: E.0.weight" in err


def test_image_not_512_is_refused_before_loading(tmp_path: Path) -> None:
    image = read_image_rgb(asset_path("Tom_Hanks_54745.png"))  # 112x112
    write_png(tmp_path / "img" / "small.png", image)
    (tmp_path / "landmark").mkdir()
    np.save(tmp_path / "landmark" / "small.npy", generic_landmarks68())
    # No weights at all: the input check must come first.
    code, _, err = run("score", str(tmp_path / "img" / "small.png"), "--weights", str(tmp_path))
    assert code == 1
    assert "is 112x112" in err
    assert "aligned 512x512" in err


def test_missing_landmarks_are_reported(tmp_path: Path) -> None:
    write_png(tmp_path / "face.png", read_image_rgb(asset_path("astronaut.png")))
    code, _, err = run("score", str(tmp_path / "face.png"), "--weights", str(tmp_path))
    assert code == 1
    assert f"expected {tmp_path / 'face.npy'}" in err


def test_eval_dataset_errors(tmp_path: Path) -> None:
    code, _, err = run("eval", str(tmp_path / "nope"), "--weights", str(tmp_path))
    assert code == 1
    assert "does not exist" in err
    make_split(tmp_path / "GFIQA" / "test", [("a.png", 1.0)])
    code, _, err = run("eval", str(tmp_path / "GFIQA"), "--weights", str(tmp_path))
    assert code == 1
    assert "pass" in err
    assert "GFIQA/test" in err


# --- with the model -------------------------------------------------------------------------


def test_score_folder_center_json_and_table(tmp_path: Path, weights: Path, model: DslFiqa) -> None:
    root = make_split(tmp_path / "s", [("b.png", 1.0), ("a.png", 2.0)])
    code, out, _ = run("score", str(root), "--weights", str(weights), "--mode", "center", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["mode"] == "center"
    assert doc["weights"] == str(weights)
    faces = doc["faces"]
    assert [Path(f["image"]).name for f in faces] == ["a.png", "b.png"]  # sorted by name
    for f in faces:
        assert f["crops_top_left"] == [[64, 64]]
        image = read_image_rgb(f["image"])
        lmk = np.load(root / "landmark" / Path(f["image"]).with_suffix(".npy").name)
        assert f["score"] == pytest.approx(reference_center_score(model, image, lmk), abs=1e-5)
        assert f["crop_scores"] == [pytest.approx(f["score"], abs=1e-7)]

    # Same scores through FQM_WEIGHTS and the table output.
    code, out, _ = run(
        "score", str(root / "img" / "a.png"), "--mode", "center", env={"FQM_WEIGHTS": str(weights)}
    )
    assert code == 0
    row = out.splitlines()[1].split()
    assert row[:2] == ["a.png", "0"]
    assert float(row[2]) == pytest.approx(faces[0]["score"], abs=1e-4)


def test_aligner_hook_scores_any_photo(model: DslFiqa) -> None:
    """An aligner turns a photo of any size into aligned faces (here the stand-in one)."""
    path = asset_path("t1.jpg")  # 1280x886
    faces = score_cli.score_images(model, [path], "center", aligner=center_crop_aligner)
    assert len(faces) == 1
    assert faces[0].face == 0
    expected = reference_center_score(
        model, center_square_512(read_image_rgb(path)), generic_landmarks68()
    )
    assert faces[0].score == pytest.approx(expected, abs=1e-5)
    assert score_cli.score_images(model, [path], "center", aligner=lambda image: []) == []


def test_eval_reports_plcc_srcc(tmp_path: Path, weights: Path, model: DslFiqa) -> None:
    root = make_split(
        tmp_path / "test",
        [("a.png", 10.0), ("b.png", 30.0), ("c.png", 20.0)],
        ["grace_hopper_512x512.jpg", "astronaut.png", "t1.jpg"],
    )
    code, out, err = run("eval", str(root), "--weights", str(weights), "--mode", "center", "--json")
    assert code == 0
    assert "[1/3] a.png" in err
    assert "[3/3] c.png" in err
    doc = json.loads(out)
    assert (doc["images"], doc["scored"], doc["mode"]) == (3, 3, "center")
    pred = [p["score"] for p in doc["predictions"]]
    assert [p["mos"] for p in doc["predictions"]] == [10.0, 30.0, 20.0]
    assert doc["plcc"] == pytest.approx(plcc(pred, [10, 30, 20]), abs=1e-9)
    assert doc["srcc"] == pytest.approx(srcc(pred, [10, 30, 20]), abs=1e-9)
    norm = np.array([0.0, 1.0, 0.5])
    assert doc["mse_norm_mos"] == pytest.approx(float(np.mean((np.array(pred) - norm) ** 2)))

    # --limit: the first N in label.json order; one image gives no correlation.
    result = score_cli.evaluate(model, FiqaDataset.from_dir(root), "center", limit=1)
    assert (result.images, result.scored) == (3, 1)
    assert result.predictions[0][2] == pytest.approx(pred[0], abs=1e-5)
    assert np.isnan(result.plcc)
    assert result.to_json()["plcc"] is None


@pytest.mark.slow
def test_official_mode_continues_the_crop_rng_across_images(tmp_path: Path, weights: Path) -> None:
    """Official: image 2 gets draws 21-40 of one RandomState(20), as the official scripts."""
    root = make_split(tmp_path / "s", [("a.png", 1.0), ("b.png", 2.0)])
    code, out, _ = run("score", str(root), "--weights", str(weights), "--json")
    assert code == 0
    faces = json.loads(out)["faces"]
    rng = np.random.RandomState(20)
    for f in faces:
        assert f["crops_top_left"] == crop_offsets("official", rng).tolist()
        assert len(f["crop_scores"]) == 20
        total = np.float32(0)
        for s in f["crop_scores"]:
            total = np.float32(total + np.float32(s))
        assert f["score"] == pytest.approx(float(total / np.float32(20)), abs=1e-6)
