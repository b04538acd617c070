"""Alignment to the 512x512 DSL-FIQA input (the level-eyes and official rules), and the cheap
quality signals."""

from __future__ import annotations

import av
import numpy as np
import pytest

from monitor.assets import asset_path
from monitor.faces import FaceDetector, FaceLandmarker
from monitor.faces.align import ALIGNED_SIZE, AlignedFace, align_face, eye_centres
from monitor.faces.quality import head_pose, laplacian_variance, quality_signals
from monitor.faces.warp import crop_to_image, image_to_crop
from pipelines.av_source import AvFileSource


def _read(name: str) -> np.ndarray:
    with av.open(str(asset_path(name))) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def _rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """Rotates about the centre (numpy nearest neighbour; enough to tilt a test face)."""
    h, w = image.shape[:2]
    t = np.radians(degrees)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    xs = np.cos(t) * (xx - cx) + np.sin(t) * (yy - cy) + cx
    ys = -np.sin(t) * (xx - cx) + np.cos(t) * (yy - cy) + cy
    xi = np.clip(np.round(xs).astype(int), 0, w - 1)
    yi = np.clip(np.round(ys).astype(int), 0, h - 1)
    return image[yi, xi]


@pytest.fixture(scope="module")
def models():
    with FaceDetector() as detector:
        yield detector, FaceLandmarker()


def _face(models, image: np.ndarray):
    detector, landmarker = models
    faces = detector.faces(detector.detect(image))
    marks = landmarker.landmarks(image, faces.xyxy, faces.keypoints)
    return faces, marks


def _roll(left: np.ndarray, right: np.ndarray) -> float:
    """Angle in degrees of the line from ``left`` to ``right`` (image left to right)."""
    d = np.asarray(right, np.float64) - np.asarray(left, np.float64)
    return float(np.degrees(np.arctan2(d[1], d[0])))


def _mesh_roll(mesh: np.ndarray, matrix: np.ndarray) -> float:
    """Roll of a face in an aligned image, from the mesh's outer eye corners (33, 263): points
    neither rule levels, so this measures the face, not the rule's own construction."""
    corners = image_to_crop(mesh[[33, 263], :2], matrix)
    return _roll(corners[0], corners[1])


def _chin_over_eyes(p: np.ndarray) -> float:
    """Eye-midpoint-to-chin distance over the distance between the eye centres: a face's
    proportion, unchanged by rotation and uniform scaling, changed by stretching."""
    a, b = eye_centres(p)
    return float(np.linalg.norm(p[8] - (a + b) / 2) / np.linalg.norm(b - a))


@pytest.mark.parametrize("tilt", [0.0, 15.0, -20.0])
def test_aligned_face_has_level_eyes_and_landmarks_in_crop_pixels(models, tilt: float) -> None:
    image = _rotate(_read("grace_hopper_512x512.jpg"), tilt)
    faces, marks = _face(models, image)
    aligned = align_face(image, faces.xyxy[0], marks.ibug68[0])
    assert aligned.image.shape == (ALIGNED_SIZE, ALIGNED_SIZE, 3)
    p = aligned.landmarks
    assert abs(_roll(*eye_centres(p))) < 0.05  # the eye centres, levelled
    assert abs(_mesh_roll(marks.points[0], aligned.matrix)) < 2.0
    assert (p > 0).all()
    assert (p < ALIGNED_SIZE).all()
    # The matrix maps the aligned points back onto the frame's points.
    back = crop_to_image(p, aligned.matrix)
    assert np.abs(back - marks.ibug68[0]).max() < 1e-3
    # The face is in the middle: eyes in the upper half, chin in the lower half.
    assert p[36:48, 1].mean() < ALIGNED_SIZE / 2 < p[8, 1]
    # Rotation and uniform scale only: the face keeps its proportions.
    assert _chin_over_eyes(p) == pytest.approx(_chin_over_eyes(marks.ibug68[0]), rel=1e-3)


@pytest.mark.parametrize("tilt", [0.0, 15.0])
def test_official_rule_levels_points_38_and_47_in_the_clipped_box(models, tilt: float) -> None:
    image = _rotate(_read("grace_hopper_512x512.jpg"), tilt)
    faces, marks = _face(models, image)
    aligned = align_face(image, faces.xyxy[0], marks.ibug68[0], rule="official")
    p = aligned.landmarks
    assert abs(p[38, 1] - p[47, 1]) < 0.5  # the official eye points, levelled
    assert abs(_roll(*eye_centres(p))) > 3  # ...which leaves the eye centres tilted
    # The crop is the enlarged box clipped to the image, resized (aligned 0 and 512 map to its
    # edges) and rotated about the aligned image's middle pixel, which stays where it was.
    x1, y1, x2, y2 = faces.xyxy[0]
    bw, bh = x2 - x1, y2 - y1
    box = np.clip([x1 - 0.8 * bw, y1 - 0.8 * bh, x2 + 0.8 * bw, y2 + 0.8 * bh], 0, 512)
    mid = (ALIGNED_SIZE - 1) / 2
    centre = crop_to_image(np.full(2, mid), aligned.matrix)
    expected = box[:2] + mid * (box[2:] - box[:2]) / ALIGNED_SIZE
    assert np.abs(centre - expected).max() < 1e-3
    back = crop_to_image(p, aligned.matrix)
    assert np.abs(back - marks.ibug68[0]).max() < 1e-3


def test_align_rejects_an_unknown_rule(models) -> None:
    image = _read("grace_hopper_512x512.jpg")
    faces, marks = _face(models, image)
    with pytest.raises(ValueError, match="rule must be"):
        align_face(image, faces.xyxy[0], marks.ibug68[0], rule="mtcnn")  # type: ignore[arg-type]


def test_level_eyes_on_real_video_frames_and_the_official_tilt(models) -> None:
    """franck.mp4: a webcam-style clip whose face fills the 288-line frame. The default rule
    leaves no roll and no stretch; the official one tilts every face (points 38 and 47 are an
    upper and a lower lid) and stretches it (the enlarged box is clipped to the frame)."""
    eyes_roll, official_roll, eyes_shape, official_shape = [], [], [], []
    with AvFileSource(asset_path("franck.mp4")) as source:
        for frame in source:
            if frame.index >= 600:
                break
            if frame.index % 40:
                continue
            faces, marks = _face(models, frame.image)
            if not len(faces) or not marks.found[0]:
                continue
            ref = _chin_over_eyes(marks.ibug68[0])
            for rule, roll, shape in (
                ("eyes", eyes_roll, eyes_shape),
                ("official", official_roll, official_shape),
            ):
                a = align_face(frame.image, faces.xyxy[0], marks.ibug68[0], rule=rule)
                roll.append(_mesh_roll(marks.points[0], a.matrix))
                shape.append(_chin_over_eyes(a.landmarks) / ref - 1)
    assert len(eyes_roll) >= 12
    assert abs(np.mean(eyes_roll)) < 1.0
    assert np.abs(eyes_roll).max() < 3.0
    assert np.abs(eyes_shape).max() < 0.01
    assert np.mean(official_roll) < -5.0
    assert np.mean(official_shape) > 0.1


def test_a_face_at_the_border_of_a_small_frame_is_padded_not_stretched(models) -> None:
    """A face at the top of a 200x120 frame: its enlarged box runs past the top edge. The
    default rule pads (black where the frame ends) and keeps the proportions; clipping (the
    official rule) squeezes the box and stretches the face."""
    face = _read("grace_hopper_512x512.jpg")
    small = av.VideoFrame.from_ndarray(face, format="rgb24").reformat(110, 110).to_ndarray()
    frame = np.full((120, 200, 3), 128, np.uint8)
    frame[:110, :110] = small
    faces, marks = _face(models, frame)
    assert len(faces) == 1
    assert marks.found[0]
    _, y1, _, y2 = faces.xyxy[0]
    assert y1 - 0.8 * (y2 - y1) < 0  # the enlarged box runs past the top edge
    ref = _chin_over_eyes(marks.ibug68[0])
    padded = align_face(frame, faces.xyxy[0], marks.ibug68[0])
    assert _chin_over_eyes(padded.landmarks) == pytest.approx(ref, rel=1e-3)
    # Aligned pixels that map outside the frame are black (padding).
    outside = crop_to_image(np.array([[5.0, 5.0]]), padded.matrix)[0]
    assert (outside < 0).any()
    assert padded.image[5, 5].max() == 0
    clipped = align_face(frame, faces.xyxy[0], marks.ibug68[0], rule="official")
    assert abs(_chin_over_eyes(clipped.landmarks) / ref - 1) > 0.05


def test_align_refuses_missing_landmarks() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(ValueError, match="68 landmarks"):
        align_face(image, np.array([10, 10, 50, 50]), np.full((68, 2), np.nan))


def test_aligned_face_is_immutable() -> None:
    face = AlignedFace(np.zeros((512, 512, 3)), np.zeros((68, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="read-only"):
        face.image[0, 0, 0] = 1
    with pytest.raises(ValueError, match=r"AlignedFace.landmarks must have shape \(68, 2\)"):
        AlignedFace(np.zeros((512, 512, 3)), np.zeros((5, 2)), np.zeros((2, 3)))


def test_head_pose_of_a_rotated_synthetic_mesh() -> None:
    mesh = np.zeros((468, 3))
    mesh[33], mesh[263] = (-30, 0, 0), (30, 0, 0)  # outer eye corners
    mesh[10], mesh[152] = (0, -50, 0), (0, 50, 0)  # forehead, chin
    assert head_pose(mesh) == pytest.approx((0, 0, 0))
    t = np.radians(20)
    yaw_rot = np.array([[np.cos(t), 0, -np.sin(t)], [0, 1, 0], [np.sin(t), 0, np.cos(t)]])
    assert head_pose(mesh @ yaw_rot.T)[0] == pytest.approx(20, abs=0.1)
    roll_rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    assert head_pose(mesh @ roll_rot.T)[2] == pytest.approx(20, abs=0.1)
    pitch_rot = np.array([[1, 0, 0], [0, np.cos(t), np.sin(t)], [0, -np.sin(t), np.cos(t)]])
    assert head_pose(mesh @ pitch_rot.T)[1] == pytest.approx(20, abs=0.1)


def test_quality_signals_on_a_frontal_still_and_its_degradations(models) -> None:
    image = _read("grace_hopper_512x512.jpg")

    def signals(img: np.ndarray):
        faces, marks = _face(models, img)
        aligned = align_face(img, faces.xyxy[0], marks.ibug68[0])
        return quality_signals(faces.xyxy[0], marks.points[0], aligned.image, aligned.landmarks)

    q = signals(image)
    assert abs(q.yaw) < 15
    assert abs(q.roll) < 10
    assert abs(q.pitch) < 20
    assert q.face_size > 150
    assert 0.4 * q.face_size < q.interocular < 0.9 * q.face_size
    # Blur (a 5x5 box filter) lowers sharpness; darkening lowers brightness and contrast.
    pad = np.pad(image.astype(np.float64), ((2, 2), (2, 2), (0, 0)), mode="edge")
    blurred = sum(pad[i : i + 512, j : j + 512] for i in range(5) for j in range(5)) / 25
    assert signals(blurred.astype(np.uint8)).sharpness < 0.5 * q.sharpness
    dark = signals((image * 0.4).astype(np.uint8))
    assert dark.brightness < 0.5 * q.brightness
    assert dark.contrast < 0.6 * q.contrast
    # A mirror image mirrors the pose: roll changes sign.
    mirrored = signals(np.ascontiguousarray(image[:, ::-1]))
    assert np.sign(mirrored.roll) == -np.sign(q.roll)


def test_laplacian_variance_is_zero_on_flat_images() -> None:
    assert laplacian_variance(np.full((50, 50), 7.0)) == 0
    assert laplacian_variance(np.zeros((2, 2))) == 0
    checker = (np.indices((20, 20)).sum(0) % 2) * 255.0
    assert laplacian_variance(checker) > 1000
