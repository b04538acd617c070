"""Rank and linear correlation (SRCC / PLCC) without scipy."""

from __future__ import annotations

import numpy as np


def rankdata(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (scipy's default ``average``)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(len(v), dtype=np.float64)
    sorted_v = v[order]
    start = 0
    while start < len(v):
        end = start
        while end + 1 < len(v) and sorted_v[end + 1] == sorted_v[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def plcc(pred: np.ndarray, target: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant."""
    p = np.asarray(pred, dtype=np.float64).ravel()
    t = np.asarray(target, dtype=np.float64).ravel()
    p, t = p - p.mean(), t - t.mean()
    denom = np.sqrt((p * p).sum() * (t * t).sum())
    return float((p * t).sum() / denom) if denom > 0 else float("nan")


def srcc(pred: np.ndarray, target: np.ndarray) -> float:
    """Spearman correlation = Pearson of the average ranks."""
    return plcc(rankdata(pred), rankdata(target))
