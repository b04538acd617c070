"""The face mesh on real stills, and the 68-point iBUG mapping landing on the right features."""

from __future__ import annotations

import zipfile
from pathlib import Path

import av
import numpy as np
import pytest

from monitor.assets import asset_path
from monitor.faces.detector import FaceDetector
from monitor.faces.ibug68 import MESH_FOR_IBUG68, MIRROR_PAIRS, mesh_to_ibug68
from monitor.faces.landmarks import FaceLandmarker, FaceLandmarks

STILLS = ["astronaut.png", "grace_hopper_512x512.jpg"]


def _read(name: str) -> np.ndarray:
    with av.open(str(asset_path(name))) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


@pytest.fixture(scope="module")
def landmarker() -> FaceLandmarker:
    return FaceLandmarker()


@pytest.fixture(scope="module", params=STILLS)
def still(request: pytest.FixtureRequest, landmarker: FaceLandmarker):
    image = _read(request.param)
    with FaceDetector() as detector:
        faces = detector.faces(detector.detect(image))
    assert len(faces) == 1
    marks = landmarker.landmarks(image, faces.xyxy, faces.keypoints)
    return image, faces, marks


def test_a_mesh_is_found_for_the_face(still) -> None:
    _, _, marks = still
    assert marks.found.tolist() == [True]
    assert marks.presence[0] > 0.9
    assert marks.points.shape == (1, 468, 3)


def test_eye_points_lie_around_the_detector_eye_keypoints(still) -> None:
    _, faces, marks = still
    p, kp, width = marks.ibug68[0], faces.keypoints[0], float(faces.widths[0])
    right_eye, left_eye = p[36:42].mean(0), p[42:48].mean(0)
    assert np.linalg.norm(right_eye - kp[0]) < 0.1 * width
    assert np.linalg.norm(left_eye - kp[1]) < 0.1 * width
    assert np.linalg.norm(p[30] - kp[2]) < 0.1 * width  # nose tip
    assert np.linalg.norm(p[60:68].mean(0) - kp[3]) < 0.1 * width  # mouth centre


def test_the_68_points_are_in_anatomical_order(still) -> None:
    _, _, marks = still
    p = marks.ibug68[0]
    x, y = p[:, 0], p[:, 1]
    assert y[8] > y[57] > y[51] > y[33] > y[30] > y[27]  # chin, lips, nose base, tip, bridge
    assert y[17:27].max() < y[36:48].min()  # brows above the eyes
    assert x[36] < x[39] < x[42] < x[45]  # eye corners left to right in the image
    assert x[0] < x[8] < x[16]  # jaw from the image's left to right
    assert x[48] < x[51] < x[54]  # mouth corners around the philtrum
    assert y[37] < y[41]  # upper lid above lower lid
    assert y[62] <= y[66] + 1  # inner lips: upper above (or on) lower


def test_the_mapping_is_mirror_symmetric_on_frontal_faces(still) -> None:
    _, faces, marks = still
    p = marks.ibug68[0]
    midline = p[[8, 27, 28, 29, 30, 33, 51, 57, 62, 66], 0].mean()
    errors = [abs((p[a, 0] + p[b, 0]) / 2 - midline) for a, b in MIRROR_PAIRS]
    assert max(errors) < 0.08 * float(faces.widths[0])


def test_table_is_68_distinct_mesh_vertices_and_pairs_cover_all_side_points() -> None:
    assert len(set(MESH_FOR_IBUG68)) == 68
    assert max(MESH_FOR_IBUG68) < 468
    paired = {i for pair in MIRROR_PAIRS for i in pair}
    assert len(paired) == 2 * len(MIRROR_PAIRS)
    assert set(range(68)) - paired == {8, 27, 28, 29, 30, 33, 51, 57, 62, 66}
    mesh = np.arange(478 * 3, dtype=np.float32).reshape(478, 3)
    assert mesh_to_ibug68(mesh)[0, 0] == MESH_FOR_IBUG68[0] * 3


def test_no_mesh_where_there_is_no_face(landmarker: FaceLandmarker) -> None:
    blank = np.full((300, 300, 3), 128, np.uint8)
    marks = landmarker.landmarks(blank, np.array([[100, 100, 200, 200]]))
    assert marks.found.tolist() == [False]
    assert np.isnan(marks.ibug68).all()
    assert len(landmarker.landmarks(blank, np.zeros((0, 4)))) == 0


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="num_threads >= 1"):
        FaceLandmarker(num_threads=0)
    with pytest.raises(ValueError, match="crop_scale must be >= 1"):
        FaceLandmarker(crop_scale=0.5)


def test_container_checks_shapes() -> None:
    with pytest.raises(ValueError, match=r"points must have shape \(N, 468, 3\)"):
        FaceLandmarks(np.zeros((1, 478, 3)), np.zeros(1))
    assert len(FaceLandmarks.empty()) == 0


def test_runner_agrees_with_mediapipes_own_graph(
    tmp_path: Path, landmarker: FaceLandmarker
) -> None:
    """Our LiteRT run of face_landmark.tflite vs MediaPipe's Tasks FaceLandmarker.

    The Tasks graph reads this model's 1404 outputs as 478 (x, y) pairs, so its point ``j``
    holds the true x, y of mesh vertex ``2j/3`` whenever ``j`` is a multiple of 3: those
    points (vertices 0, 2, 4, ... 318) are a ground truth from MediaPipe's own runtime.
    """
    from mediapipe import Image, ImageFormat
    from mediapipe.tasks.python import BaseOptions, vision

    task = tmp_path / "face_landmarker.task"
    with zipfile.ZipFile(task, "w") as zf:
        zf.write(asset_path("face_detection_short_range.tflite"), "face_detector.tflite")
        zf.write(asset_path("face_landmark.tflite"), "face_landmarks_detector.tflite")
    image = _read("grace_hopper_512x512.jpg")
    options = vision.FaceLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(task)))
    with vision.FaceLandmarker.create_from_options(options) as tasks_landmarker:
        result = tasks_landmarker.detect(Image(image_format=ImageFormat.SRGB, data=image))
    h, w = image.shape[:2]
    raw = np.array([(p.x * w, p.y * h) for p in result.face_landmarks[0]])
    js = np.arange(0, 478, 3)
    truth = raw[js]
    vertices = 2 * js // 3
    with FaceDetector() as detector:
        faces = detector.faces(detector.detect(image))
    ours = landmarker.landmarks(image, faces.xyxy, faces.keypoints).points[0, vertices, :2]
    error = np.linalg.norm(ours - truth, axis=1)
    assert np.median(error) < 0.01 * float(faces.widths[0]), np.median(error)
