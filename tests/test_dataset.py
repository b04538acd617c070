"""The official dataset layout reader, on a small split built from real images."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from engines.dataset import (
    DatasetError,
    FiqaDataset,
    landmark_path_for,
    normalized_mos,
    read_image_rgb,
    read_landmarks,
)
from monitor.assets import asset_path
from tests.support.faces import center_square_512, generic_landmarks68


def write_png(path: Path, image: np.ndarray) -> None:
    """Encode an RGB image as PNG with PyAV (lossless)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream("png")
        stream.width, stream.height = image.shape[1], image.shape[0]
        stream.pix_fmt = "rgb24"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def make_split(
    root: Path, names_mos: list[tuple[str, float]], sources: list[str] | None = None
) -> Path:
    """An official-layout split: img/NAME.png (real faces, 512x512), landmark/NAME.npy, label."""
    sources = sources or ["grace_hopper_512x512.jpg", "astronaut.png", "Tom_Hanks_54745.png"]
    for i, (name, _) in enumerate(names_mos):
        image = center_square_512(read_image_rgb(asset_path(sources[i % len(sources)])))
        write_png(root / "img" / name, image)
        (root / "landmark").mkdir(parents=True, exist_ok=True)
        np.save(root / "landmark" / (Path(name).stem + ".npy"), generic_landmarks68())
    label = {"Image": [n for n, _ in names_mos], "MOS": [m for _, m in names_mos]}
    (root / "label.json").write_text(json.dumps(label))
    return root


def test_png_roundtrip_is_exact(tmp_path: Path) -> None:
    image = read_image_rgb(asset_path("astronaut.png"))
    write_png(tmp_path / "a.png", image)
    assert np.array_equal(read_image_rgb(tmp_path / "a.png"), image)


def test_reads_split_in_label_order(tmp_path: Path) -> None:
    root = make_split(tmp_path / "test", [("b.png", 3.0), ("a.png", 1.0), ("c.png", 2.0)])
    ds = FiqaDataset.from_dir(root)
    assert [s.name for s in ds] == ["b.png", "a.png", "c.png"]  # label.json order, not sorted
    assert ds.mos.tolist() == [3.0, 1.0, 2.0]
    assert ds[1].landmark_path == root / "landmark" / "a.npy"
    image, lmk = ds.load(0)
    assert image.shape == (512, 512, 3)
    assert image.dtype == np.uint8
    assert lmk.shape == (68, 2)
    assert lmk.dtype == np.float32
    assert len(ds.head(2)) == 2
    assert ds.head(None) is ds


def test_normalized_mos() -> None:
    assert normalized_mos(np.array([2.0, 4.0, 3.0])).tolist() == [0.0, 1.0, 0.5]
    assert normalized_mos(np.array([5.0, 5.0])).tolist() == [0.0, 0.0]


def test_landmark_path_for() -> None:
    assert landmark_path_for(Path("x/img/f.png")) == Path("x/landmark/f.npy")
    assert landmark_path_for(Path("photos/f.jpg")) == Path("photos/f.npy")


def test_missing_files_are_listed(tmp_path: Path) -> None:
    root = make_split(tmp_path / "s", [("a.png", 1.0), ("b.png", 2.0)])
    (root / "landmark" / "b.npy").unlink()
    (root / "img" / "a.png").unlink()
    with pytest.raises(DatasetError, match=r"1 images missing .*a\.png.*1 landmark files .*b\.npy"):
        FiqaDataset.from_dir(root)


def test_points_to_the_split_folder(tmp_path: Path) -> None:
    make_split(tmp_path / "GFIQA" / "test", [("a.png", 1.0)])
    with pytest.raises(DatasetError, match=r"holds the splits test: pass .*GFIQA/test"):
        FiqaDataset.from_dir(tmp_path / "GFIQA")
    with pytest.raises(DatasetError, match="does not exist"):
        FiqaDataset.from_dir(tmp_path / "nope")


@pytest.mark.parametrize(
    ("label", "match"),
    [
        ([1, 2], "must be a JSON object"),
        ({"Image": ["a.png"]}, "must be a JSON object"),
        ({"Image": ["a.png"], "MOS": [1, 2]}, "1 images but 2 MOS"),
        ({"Image": ["a.png"], "MOS": ["high"]}, "finite numbers"),
        ({"Image": ["a.png", "a.png"], "MOS": [1, 2]}, "more than once"),
        ({"Image": [], "MOS": []}, "no images"),
    ],
)
def test_malformed_label_json(tmp_path: Path, label: object, match: str) -> None:
    root = make_split(tmp_path / "s", [("a.png", 1.0)])
    (root / "label.json").write_text(json.dumps(label))
    with pytest.raises(DatasetError, match=match):
        FiqaDataset.from_dir(root)


def test_bad_landmark_and_image_files(tmp_path: Path) -> None:
    np.save(tmp_path / "wrong.npy", np.zeros((5, 2), np.float32))
    with pytest.raises(DatasetError, match=r"shape \(5, 2\); expected \[68, 2\]"):
        read_landmarks(tmp_path / "wrong.npy")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match="cannot decode image"):
        read_image_rgb(tmp_path / "junk.png")
