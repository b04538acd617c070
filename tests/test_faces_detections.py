"""FaceDetections: shape checks, immutability, selection, and conversion from MediaPipe."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from monitor.faces.boxes import box_iou, nms, weighted_nms
from monitor.faces.detections import FaceDetections


def _dets(n: int) -> FaceDetections:
    xyxy = np.array([[10 * i, 0, 10 * i + 8, 8] for i in range(n)], np.float32)
    return FaceDetections(
        xyxy=xyxy,
        scores=np.linspace(0.5, 0.9, n, dtype=np.float32),
        keypoints=np.zeros((n, 6, 2), np.float32),
    )


def test_empty_has_the_documented_shapes() -> None:
    d = FaceDetections.empty()
    assert len(d) == 0
    assert d.xyxy.shape == (0, 4)
    assert d.scores.shape == (0,)
    assert d.keypoints.shape == (0, 6, 2)


@pytest.mark.parametrize(
    ("xyxy", "scores", "kps", "field"),
    [
        (np.zeros((2, 5)), np.zeros(2), np.zeros((2, 6, 2)), "xyxy"),
        (np.zeros((2, 4)), np.zeros(3), np.zeros((2, 6, 2)), "scores"),
        (np.zeros((2, 4)), np.zeros(2), np.zeros((2, 5, 2)), "keypoints"),
    ],
)
def test_shape_errors_name_the_field_and_both_shapes(
    xyxy: np.ndarray, scores: np.ndarray, kps: np.ndarray, field: str
) -> None:
    with pytest.raises(ValueError, match=rf"FaceDetections\.{field} must have shape .* got"):
        FaceDetections(xyxy=xyxy, scores=scores, keypoints=kps)


def test_inputs_are_copied_and_the_container_is_read_only() -> None:
    xyxy = np.zeros((1, 4), np.float32)
    d = FaceDetections(xyxy=xyxy, scores=[0.9], keypoints=np.zeros((1, 6, 2)))
    xyxy[0, 0] = 99
    assert d.xyxy[0, 0] == 0
    with pytest.raises(ValueError, match="read-only"):
        d.xyxy[0, 0] = 1
    with pytest.raises(AttributeError):
        d.scores = np.ones(1)  # type: ignore[misc]
    assert d.xyxy.dtype == np.float32


def test_getitem_by_int_slice_mask_and_indices_returns_new_containers() -> None:
    d = _dets(4)
    assert len(d[0]) == 1
    assert len(d[1:3]) == 2
    mask = d.scores > 0.7
    assert np.array_equal(d[mask].scores, d.scores[mask])
    picked = d[np.array([3, 0])]
    assert np.array_equal(picked.xyxy, d.xyxy[[3, 0]])
    assert len(d) == 4


def test_merge_concatenates() -> None:
    assert len(FaceDetections.merge([_dets(2), _dets(3)])) == 5
    assert len(FaceDetections.merge([])) == 0


def test_from_mediapipe_converts_boxes_and_normalised_keypoints_to_pixels() -> None:
    det = SimpleNamespace(
        bounding_box=SimpleNamespace(origin_x=10, origin_y=20, width=30, height=40),
        categories=[SimpleNamespace(score=0.9)],
        keypoints=[SimpleNamespace(x=0.5, y=0.25) for _ in range(6)],
    )
    d = FaceDetections.from_mediapipe(SimpleNamespace(detections=[det]), width=200, height=100)
    assert d.xyxy.tolist() == [[10, 20, 40, 60]]
    assert d.scores[0] == pytest.approx(0.9)
    assert d.keypoints[0, 0].tolist() == [100, 25]
    assert len(FaceDetections.from_mediapipe(SimpleNamespace(detections=[]), 10, 10)) == 0


def test_clipped_keeps_boxes_inside_the_image() -> None:
    d = FaceDetections(
        xyxy=[[-5, -5, 50, 120]], scores=[0.9], keypoints=np.zeros((1, 6, 2))
    ).clipped(40, 100)
    assert d.xyxy.tolist() == [[0, 0, 40, 100]]


def test_iou_and_nms() -> None:
    a = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [100, 100, 110, 110]], np.float32)
    iou = box_iou(a, a)
    assert iou[0, 1] == pytest.approx(50 / 150)
    assert iou[0, 2] == 0
    keep = nms(a, np.array([0.5, 0.9, 0.7]), iou_threshold=0.3)
    assert keep.tolist() == [1, 2]


def test_weighted_nms_averages_each_cluster_by_score_and_keeps_its_best_score() -> None:
    xyxy = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [100, 100, 110, 110]], np.float32)
    scores = np.array([0.6, 0.9, 0.3])
    points = np.array([[[0, 0]], [[5, 5]], [[100, 100]]], np.float32)
    boxes, kept, pts = weighted_nms(xyxy, scores, points, iou_threshold=0.3)
    assert kept.tolist() == pytest.approx([0.9, 0.3])
    assert boxes[0].tolist() == pytest.approx([1.2, 0, 11.2, 10])  # (0.6 * 0 + 0.9 * 2) / 1.5
    assert pts[0, 0].tolist() == pytest.approx([3, 3])
    assert boxes[1].tolist() == [100, 100, 110, 110]
    empty = weighted_nms(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 6, 2)), 0.3)
    assert [a.shape for a in empty] == [(0, 4), (0,), (0, 6, 2)]
