"""``fqm score`` / ``fqm eval`` with the real model: fixture weights saved as DE.pt / IQA.pt.

The fixture weights are random, so the scores mean nothing; what is checked is that the CLI
loads official-format files, feeds the model exactly the official crops and landmark vectors,
and reports what the model computed, and that photos without landmarks go through
monitor/faces (detect, landmark, align) with a bbox and detection score per face. Small
(`center` mode, few faces, ``--max-faces``): a crop costs ~2 s here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import engines
import engines.dslfiqa
from engines import DslFiqa, load_dslfiqa
from engines.dataset import DatasetError, FiqaDataset, read_image_rgb
from engines.dslfiqa.preprocess import (
    crop_images,
    crop_offsets,
    landmark_vector,
    normalize_image,
)
from engines.evaluate import evaluate
from engines.metrics import plcc, srcc
from monitor import photos
from monitor.assets import asset_path
from monitor.cli import cli
from monitor.faces import FaceDetector, FaceLandmarker, align_face
from monitor.faces.aligner import PhotoAligner
from tests.support.dslfiqa_fixture import regenerate_weights
from tests.support.faces import center_square_512, generic_landmarks68
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


def test_without_weights_the_shipped_model_scores_and_a_bad_folder_says_how_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_split(tmp_path / "s", [("a.png", 1.0)])
    monkeypatch.delenv("FQM_WEIGHTS", raising=False)
    code, out, err = run("score", str(tmp_path / "s"), "--json")
    assert code == 0, err
    assert json.loads(out)["model"] == "dslfiqa-lite"
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
    assert "fit no known model variant" in err
    assert "DE E.0.weight missing" in err


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
    # The library path without an aligner still needs the landmark file.
    write_png(tmp_path / "face.png", read_image_rgb(asset_path("astronaut.png")))
    with pytest.raises(DatasetError, match="no landmarks"):
        photos.check_prealigned(tmp_path / "face.png")


# --- the photo aligner (no DSL-FIQA model) --------------------------------------------------


@pytest.fixture(scope="module")
def photo_aligner() -> Iterator[PhotoAligner]:
    with PhotoAligner() as aligner:
        yield aligner


def test_photo_aligner_is_detector_landmarker_and_align_face(photo_aligner: PhotoAligner) -> None:
    image = read_image_rgb(asset_path("astronaut.png"))
    (face,) = photo_aligner(image)
    with FaceDetector("both") as detector:
        found = detector.faces(detector.detect(image))
    marks = FaceLandmarker().landmarks(image, found.xyxy, found.keypoints)
    ref = align_face(image, found.xyxy[0], marks.ibug68[0])
    assert np.array_equal(face.image, ref.image)
    assert np.array_equal(face.landmarks, ref.landmarks)
    assert face.bbox == pytest.approx(found.xyxy[0].tolist())
    assert face.detection_score == pytest.approx(float(found.scores[0]))
    assert photo_aligner(read_image_rgb(asset_path("logo.png"))) == []


def test_photo_aligner_group_photo_max_faces_and_close() -> None:
    image = read_image_rgb(asset_path("t1.jpg"))  # 1280x886, 6 people
    with PhotoAligner() as aligner:
        every = aligner(image)
    assert len(every) >= 4
    scores = [f.detection_score for f in every]
    assert scores == sorted(scores, reverse=True)
    assert min(scores) >= 0.6
    with PhotoAligner(max_faces=2) as aligner:
        two = aligner(image)
    assert [f.bbox for f in two] == [f.bbox for f in every[:2]]
    with pytest.raises(RuntimeError, match="closed"):
        aligner(image)
    with pytest.raises(ValueError, match="max_faces"):
        PhotoAligner(max_faces=0)


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


def test_score_photo_detects_aligns_and_scores_its_face(
    tmp_path: Path, weights: Path, model: DslFiqa, photo_aligner: PhotoAligner
) -> None:
    """A photo without landmarks: detected, aligned by monitor/faces, scored, with its bbox."""
    image = read_image_rgb(asset_path("astronaut.png"))
    photo = tmp_path / "astronaut.png"
    write_png(photo, image)
    args = ("score", str(photo), "--weights", str(weights), "--mode", "center", "--json")
    code, out, _ = run(*args)
    assert code == 0
    doc = json.loads(out)
    assert doc["no_face"] == []
    (f,) = doc["faces"]
    (aligned,) = photo_aligner(image)
    assert (f["image"], f["face"], f["source"]) == (str(photo), 0, "detected")
    assert f["bbox"] == pytest.approx(list(aligned.bbox))
    x1, y1, x2, y2 = f["bbox"]
    assert 0 <= x1 < x2 <= 512
    assert 0 <= y1 < y2 <= 512
    assert 150 < (x1 + x2) / 2 < 300  # her face, upper middle
    assert 50 < (y1 + y2) / 2 < 200
    assert f["detection_score"] == pytest.approx(aligned.detection_score)
    assert f["detection_score"] >= 0.6
    expected = reference_center_score(model, aligned.image, aligned.landmarks)
    assert f["score"] == pytest.approx(expected, abs=1e-5)

    # A landmark file beside it makes it a pre-aligned face, unless --align is given.
    np.save(tmp_path / "astronaut.npy", generic_landmarks68())
    code, out, _ = run(*args, "--align")
    assert code == 0
    (g,) = json.loads(out)["faces"]
    assert (g["source"], g["bbox"]) == ("detected", f["bbox"])
    assert g["score"] == pytest.approx(f["score"], abs=1e-6)

    # The official script's alignment rule, for parity with it: the same face, aligned
    # (and so scored) as that rule aligns it.
    code, out, _ = run(*args, "--align", "--align-rule", "official")
    assert code == 0
    (o,) = json.loads(out)["faces"]
    with PhotoAligner(rule="official") as official:
        (aligned_o,) = official(image)
    expected_o = reference_center_score(model, aligned_o.image, aligned_o.landmarks)
    assert o["score"] == pytest.approx(expected_o, abs=1e-5)
    assert not np.array_equal(aligned_o.image, aligned.image)


def test_score_folder_mixes_prealigned_group_photo_and_no_face(
    tmp_path: Path, weights: Path, model: DslFiqa
) -> None:
    """Pre-aligned face + landmarks, a group photo (2 faces kept) and a logo in one folder."""
    face = center_square_512(read_image_rgb(asset_path("grace_hopper_512x512.jpg")))
    write_png(tmp_path / "a.png", face)
    np.save(tmp_path / "a.npy", generic_landmarks68())
    shutil.copy(asset_path("t1.jpg"), tmp_path / "t1.jpg")
    shutil.copy(asset_path("logo.png"), tmp_path / "logo.png")
    base = ("score", str(tmp_path), "--weights", str(weights), "--mode", "center")
    code, out, _ = run(*base, "--max-faces", "2", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["no_face"] == [
        {"image": str(tmp_path / "logo.png"), "message": "no face found (detector both)"}
    ]
    faces = doc["faces"]
    assert [(Path(f["image"]).name, f["face"], f["source"]) for f in faces] == [
        ("a.png", 0, "landmarks"),
        ("t1.jpg", 0, "detected"),
        ("t1.jpg", 1, "detected"),
    ]
    a, t0, t1 = faces
    assert (a["bbox"], a["detection_score"]) == (None, None)
    assert a["score"] == pytest.approx(
        reference_center_score(model, face, generic_landmarks68()), abs=1e-5
    )
    assert t0["detection_score"] >= t1["detection_score"] >= 0.6
    boxes = np.array([t0["bbox"], t1["bbox"]])
    assert (boxes[:, :2] >= 0).all()
    assert (boxes[:, 2:] <= [1280, 886]).all()
    assert boxes[0, 2] <= boxes[1, 0] or boxes[1, 2] <= boxes[0, 0]  # two different people

    # The table: one row per face, and a row saying the logo has none.
    code, out, _ = run(*base, "--max-faces", "1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:6] == ["image", "face", "score", "crops", "det", "bbox"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert list(rows) == ["a.png", "logo.png", "t1.jpg"]
    assert rows["a.png"][1:2] + rows["a.png"][3:] == ["0", "1", "-", "-"]
    assert " ".join(rows["logo.png"][1:]) == "- no face found (detector both)"
    assert rows["t1.jpg"][4] == f"{t0['detection_score']:.3f}"
    assert rows["t1.jpg"][5] == ",".join(f"{v:.0f}" for v in t0["bbox"])


def test_aligner_hook_scores_any_photo(model: DslFiqa) -> None:
    """An aligner turns a photo of any size into aligned faces (here a centre-crop stand-in)."""

    def center_crop_aligner(image: np.ndarray) -> list[photos.AlignedInput]:
        return [photos.AlignedInput(center_square_512(image), generic_landmarks68())]

    path = asset_path("t1.jpg")  # 1280x886
    faces = photos.score_images(model, [path], "center", aligner=center_crop_aligner)
    assert len(faces) == 1
    assert faces[0].face == 0
    expected = reference_center_score(
        model, center_square_512(read_image_rgb(path)), generic_landmarks68()
    )
    assert faces[0].score == pytest.approx(expected, abs=1e-5)
    assert photos.score_images(model, [path], "center", aligner=lambda image: []) == []


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
    result = evaluate(model, FiqaDataset.from_dir(root), "center", limit=1)
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
