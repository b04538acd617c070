"""Box geometry shared by the detectors (non-maximum suppression) and the tracker (IoU)."""

from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union of ``[N, 4]`` and ``[M, 4]`` xyxy boxes: ``[N, M]``."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float64)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, best score first.

    Needed when two detectors (short- and full-range) see the same face.
    """
    order = np.argsort(-np.asarray(scores), kind="stable")
    iou = box_iou(xyxy, xyxy)
    keep: list[int] = []
    suppressed = np.zeros(len(order), bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        suppressed |= iou[i] > iou_threshold
    return np.asarray(keep, np.int64)


def weighted_nms(
    xyxy: np.ndarray, scores: np.ndarray, points: np.ndarray, iou_threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's weighted non-maximum suppression (its ``WEIGHTED`` algorithm).

    Greedy like ``nms``, but each kept detection's box and points become the score-weighted
    mean of its cluster (itself and every remaining box overlapping it by more than
    ``iou_threshold``); its score stays the cluster's best. ``points`` is ``[N, K, 2]``.
    Returns ``(xyxy [M, 4], scores [M], points [M, K, 2])``, best score first.
    """
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    points = np.asarray(points, np.float64)
    order = np.argsort(-scores, kind="stable")
    iou = box_iou(xyxy, xyxy)
    done = np.zeros(len(scores), bool)
    out_box, out_score, out_pts = [], [], []
    for i in order:
        if done[i]:
            continue
        cluster = np.flatnonzero(~done & (iou[i] > iou_threshold))
        cluster = np.union1d(cluster, [i])
        done[cluster] = True
        total = scores[cluster].sum()
        w = scores[cluster] / total if total > 0 else np.full(len(cluster), 1 / len(cluster))
        out_box.append(w @ xyxy[cluster])
        out_pts.append(np.tensordot(w, points[cluster], axes=1))
        out_score.append(scores[i])
    if not out_score:
        return np.zeros((0, 4)), np.zeros(0), np.zeros((0, *points.shape[1:]))
    return np.stack(out_box), np.asarray(out_score), np.stack(out_pts)


def xyxy_to_cxcywh(xyxy: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = np.asarray(xyxy, np.float64).T
    return np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=-1)


def cxcywh_to_xyxy(cxcywh: np.ndarray) -> np.ndarray:
    cx, cy, w, h = np.asarray(cxcywh, np.float64).T
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)
