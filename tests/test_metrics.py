"""PLCC / SRCC against values computed by hand (no scipy here)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engines.metrics import mean_abs_diff, plcc, rankdata, srcc


def test_rankdata_averages_ties() -> None:
    assert rankdata([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    assert rankdata([3, 3, 3]).tolist() == [2.0, 2.0, 2.0]
    assert rankdata([0.5, -1, 2, 0.5, 0.5]).tolist() == [3.0, 1.0, 5.0, 3.0, 3.0]


def test_plcc_hand_computed() -> None:
    # x-mean = (-1,0,1), y-mean = (-1,-1,2): cov 3, |x|^2 2, |y|^2 6 -> 3/sqrt(12) = sqrt(3)/2
    assert plcc([1, 2, 3], [1, 1, 4]) == pytest.approx(math.sqrt(3) / 2, abs=1e-12)
    assert plcc([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(1.0)
    assert plcc([1, 2, 3, 4], [8, 6, 4, 2]) == pytest.approx(-1.0)


def test_plcc_is_affine_invariant_like_no_logistic_fit() -> None:
    x = np.array([0.1, 0.7, 0.3, 0.9, 0.5])
    y = np.array([1.0, 3.0, 2.5, 4.0, 2.0])
    assert plcc(x, y) == pytest.approx(plcc(10 * x - 3, y), abs=1e-12)


def test_srcc_hand_computed() -> None:
    # One swapped pair among 4: sum d^2 = 2 -> 1 - 6*2/(4*15) = 0.8
    assert srcc([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(0.8)
    # Monotone but not linear: SRCC 1, PLCC < 1.
    assert srcc([1, 2, 3, 4], [1, 10, 100, 1000]) == pytest.approx(1.0)
    assert plcc([1, 2, 3, 4], [1, 10, 100, 1000]) < 0.9


def test_srcc_with_ties_hand_computed() -> None:
    # ranks x = (1, 2.5, 2.5, 4), y = (1, 2, 3, 4): centred x = (-1.5, 0, 0, 1.5),
    # y = (-1.5, -0.5, 0.5, 1.5): cov 4.5, |x|^2 4.5, |y|^2 5 -> 4.5/sqrt(22.5) = 3/sqrt(10)
    assert srcc([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(3 / math.sqrt(10), abs=1e-12)


def test_constant_series_gives_nan() -> None:
    assert math.isnan(plcc([1, 1, 1], [1, 2, 3]))
    assert math.isnan(srcc([1, 2, 3], [5, 5, 5]))


def test_errors() -> None:
    with pytest.raises(ValueError, match="equal length"):
        plcc([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        srcc([1], [1])
    with pytest.raises(ValueError, match="finite"):
        plcc([1, float("nan")], [1, 2])


def test_mean_abs_diff() -> None:
    assert mean_abs_diff([1, 2, 3], [1.5, 2, 1]) == pytest.approx((0.5 + 0 + 2) / 3)
    with pytest.raises(ValueError, match="non-empty"):
        mean_abs_diff([], [])
