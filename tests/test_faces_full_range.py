"""The full-range BlazeFace detector run in LiteRT: faces found on real stills, non-faces
rejected, coordinates mapped back through the letterbox. Counts and positions, never timings.
"""

from __future__ import annotations

from collections.abc import Iterator

import av
import numpy as np
import pytest

from monitor.assets import asset_path
from monitor.faces import FaceDetector
from monitor.faces.blazeface_full import (
    DEFAULT_MIN_SCORE,
    INPUT_SIZE,
    NUM_ANCHORS,
    FullRangeDetector,
    anchors,
    letterbox,
)
from monitor.faces.boxes import box_iou


def _read(name: str) -> np.ndarray:
    with av.open(str(asset_path(name))) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


@pytest.fixture(scope="module")
def full() -> Iterator[FullRangeDetector]:
    with FullRangeDetector() as d:
        yield d


@pytest.fixture(scope="module")
def short() -> Iterator[FaceDetector]:
    with FaceDetector("short") as d:
        yield d


def test_group_photo_faces_have_eyes_inside_plausible_boxes(full: FullRangeDetector) -> None:
    """t1.jpg (1280x886) has six faces of ~100-130 pixels; the short-range model finds none
    at 0.6 and the sparse full-range file found 3."""
    faces = full.faces(full.detect(_read("t1.jpg")))
    assert len(faces) >= 5
    assert faces.scores.min() >= DEFAULT_MIN_SCORE
    assert np.all((faces.widths > 60) & (faces.widths < 200))
    assert np.all(np.abs(faces.widths / faces.heights - 1) < 0.3)
    eyes = faces.keypoints[:, :2]  # right eye, left eye
    x1, y1, x2, y2 = (faces.xyxy[:, None, i] for i in range(4))
    assert np.all((eyes[..., 0] > x1) & (eyes[..., 0] < x2))
    assert np.all((eyes[..., 1] > y1) & (eyes[..., 1] < y2))
    # Upright, unmirrored faces: the subject's right eye is on the image's left.
    assert np.all(eyes[:, 0, 0] < eyes[:, 1, 0])
    iou = box_iou(faces.xyxy, faces.xyxy)
    np.fill_diagonal(iou, 0)
    assert iou.max() < 0.1  # one box per face after suppression


@pytest.mark.parametrize("model", ["full", "both"])
def test_face_detector_uses_the_full_range_model(model: str) -> None:
    with FaceDetector(model) as d:  # type: ignore[arg-type]
        assert len(d.faces(d.detect(_read("t1.jpg")))) >= 5


@pytest.mark.parametrize("name", ["astronaut.png", "grace_hopper_512x512.jpg"])
def test_portraits_match_the_short_range_detector(
    full: FullRangeDetector, short: FaceDetector, name: str
) -> None:
    image = _read(name)
    ours = full.faces(full.detect(image))
    theirs = short.faces(short.detect(image))
    assert len(ours) == len(theirs) == 1
    assert ours.scores[0] >= 0.7
    assert box_iou(ours.xyxy, theirs.xyxy)[0, 0] > 0.6
    # Eyes, nose tip and mouth within 10% of the face width of MediaPipe's own detector
    # (measured: 2-4%); the ear points are vaguer (6-9%).
    gap = np.linalg.norm(ours.keypoints[0] - theirs.keypoints[0], axis=1) / ours.widths[0]
    assert np.all(gap[:4] < 0.1), gap
    assert np.all(gap < 0.15), gap


def test_coordinates_follow_the_picture_into_a_larger_padded_frame(
    full: FullRangeDetector,
) -> None:
    """The same face at an offset in a black 1024x768 frame: the box and keypoints move by
    the offset (the letterbox and its inverse agree), though the face reaches the model at
    40% of the size."""
    image = _read("grace_hopper_512x512.jpg")
    canvas = np.zeros((768, 1024, 3), np.uint8)
    canvas[100:612, 300:812] = image
    alone = full.faces(full.detect(image))
    placed = full.faces(full.detect(canvas))
    assert len(alone) == len(placed) == 1
    width = alone.widths[0]
    assert np.abs(placed.xyxy[0] - alone.xyxy[0] - [300, 100, 300, 100]).max() < 0.1 * width
    assert np.abs(placed.keypoints[0] - alone.keypoints[0] - [300, 100]).max() < 0.1 * width


@pytest.mark.parametrize("name", ["logo.png", "coffee.png"])
def test_non_faces_score_well_under_the_threshold(full: FullRangeDetector, name: str) -> None:
    found = full.detect(_read(name))
    assert len(full.faces(found)) == 0
    assert found.scores.max(initial=0) < 0.4  # measured: logo 0.23, coffee nothing >= 0.2


@pytest.mark.parametrize("value", [0, 128, 255])
def test_blank_frames_have_no_candidates(full: FullRangeDetector, value: int) -> None:
    assert len(full.detect(np.full((288, 360, 3), value, np.uint8))) == 0


def test_noise_has_no_faces(full: FullRangeDetector) -> None:
    image = np.random.default_rng(0).integers(0, 256, (288, 360, 3), dtype=np.uint8)
    assert len(full.faces(full.detect(image))) == 0


def test_anchors_are_the_48x48_grid_centres() -> None:
    a = anchors()
    assert a.shape == (NUM_ANCHORS, 2)
    assert a[0].tolist() == [2.0, 2.0]
    assert a[1].tolist() == [6.0, 2.0]  # row by row: x varies fastest
    assert a[-1].tolist() == [190.0, 190.0]


def test_letterbox_keeps_the_aspect_ratio_centres_and_pads_black() -> None:
    image = np.full((50, 100, 3), 255, np.uint8)
    tensor, (sx, sy, px, py) = letterbox(image)
    assert tensor.shape == (INPUT_SIZE, INPUT_SIZE, 3)
    assert (sx, sy, px, py) == (100 / 192, 50 / 96, 0, 48)
    assert np.all(tensor[:48] == -1)
    assert np.all(tensor[144:] == -1)
    assert np.allclose(tensor[48:144], 1.0)


def test_detector_checks_settings_input_and_close() -> None:
    with pytest.raises(ValueError, match="low_score <= min_score"):
        FullRangeDetector(min_score=0.3, low_score=0.5)
    with pytest.raises(ValueError, match="num_threads"):
        FullRangeDetector(num_threads=0)
    d = FullRangeDetector()
    with pytest.raises(ValueError, match="RGB uint8"):
        d.detect(np.zeros((10, 10), np.uint8))
    d.close()
    with pytest.raises(RuntimeError, match="closed"):
        d.detect(np.zeros((10, 10, 3), np.uint8))
