"""Agreement metrics for quality scores: PLCC, SRCC (numpy only, no scipy).

The official DSL-FIQA evaluation reports scipy's ``pearsonr`` and ``spearmanr`` on the raw
predictions and MOS, with no logistic fit (DSL_FIQA.md §2.5); these functions give the same
numbers. Spearman ranks tied values by their average rank, as scipy does.

Example:
    >>> round(srcc([1, 2, 3, 4], [10, 20, 40, 30]), 3)
    0.8
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


def _pair(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"need two series of equal length, got {x.size} and {y.size}")
    if x.size < 2:
        raise ValueError(f"a correlation needs at least 2 pairs, got {x.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("scores must be finite (got NaN or inf)")
    return x, y


def rankdata(values: ArrayLike) -> np.ndarray:
    """1-based ranks, ties given the mean of the ranks they span (scipy's ``average``).

    >>> rankdata([10, 20, 20, 5]).tolist()
    [2.0, 3.5, 3.5, 1.0]
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(v, kind="mergesort")
    sorted_v = v[order]
    # Start index of each run of equal values in sorted order.
    starts = np.flatnonzero(np.r_[True, sorted_v[1:] != sorted_v[:-1]])
    ends = np.r_[starts[1:], v.size]  # exclusive
    run_rank = (starts + ends + 1) / 2.0  # mean of 1-based ranks starts+1 .. ends
    ranks = np.empty(v.size, dtype=np.float64)
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def plcc(pred: ArrayLike, target: ArrayLike) -> float:
    """Pearson linear correlation; ``nan`` when either series is constant (as scipy)."""
    x, y = _pair(pred, target)
    x, y = x - x.mean(), y - y.mean()
    denom = np.sqrt(np.dot(x, x) * np.dot(y, y))
    if denom == 0:
        return float("nan")
    return float(np.clip(np.dot(x, y) / denom, -1.0, 1.0))


def srcc(pred: ArrayLike, target: ArrayLike) -> float:
    """Spearman rank correlation: Pearson on average-tie ranks; ``nan`` for a constant series."""
    x, y = _pair(pred, target)
    return plcc(rankdata(x), rankdata(y))


def mean_abs_diff(a: ArrayLike, b: ArrayLike) -> float:
    """Mean of ``|a - b|`` over paired values."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"need two non-empty series of equal length, got {x.size} and {y.size}")
    return float(np.mean(np.abs(x - y)))


def why_undefined(pred: ArrayLike, target: ArrayLike) -> str | None:
    """Why PLCC and SRCC of these series are undefined (``nan``), or None when they are not."""
    x = np.asarray(pred, dtype=np.float64).ravel()
    y = np.asarray(target, dtype=np.float64).ravel()
    if min(x.size, y.size) < 2:
        return f"a correlation needs at least 2 scored images, got {min(x.size, y.size)}"
    if np.ptp(y) == 0:
        return f"every MOS equals {y[0]:g}: there is no ranking to agree with"
    if np.ptp(x) == 0:
        return f"every prediction equals {x[0]:g}: the model ranks nothing"
    return None
