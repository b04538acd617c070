"""Assignment of detections to tracks by IoU.

Greedy: pairs are taken in order of decreasing IoU, each track and detection at most once,
none below the threshold. With the few faces per frame fqm sees this gives the same pairs as
an optimal (Hungarian) assignment except in contrived ties, and needs no extra dependency.
"""

from __future__ import annotations

import numpy as np


def greedy_match(
    iou: np.ndarray, min_iou: float
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Matches rows (tracks) to columns (detections) of an ``[N, M]`` IoU matrix.

    Returns:
        (pairs as (row, column), unmatched rows, unmatched columns), each sorted.
    """
    n, m = iou.shape
    pairs: list[tuple[int, int]] = []
    if n and m:
        flat = np.argsort(-iou, axis=None, kind="stable")
        used_r = np.zeros(n, bool)
        used_c = np.zeros(m, bool)
        for k in flat:
            r, c = divmod(int(k), m)
            if iou[r, c] < min_iou:
                break
            if used_r[r] or used_c[c]:
                continue
            used_r[r] = used_c[c] = True
            pairs.append((r, c))
    matched_r = {r for r, _ in pairs}
    matched_c = {c for _, c in pairs}
    return (
        sorted(pairs),
        [r for r in range(n) if r not in matched_r],
        [c for c in range(m) if c not in matched_c],
    )
