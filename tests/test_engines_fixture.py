"""The in-repository DSL-FIQA parity fixture: self-contained, small, and its summaries sound."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support import dslfiqa_fixture
from tests.support.dslfiqa_fixture import intermediate_deviation, load_fixture, same_content
from tests.support.make_dslfiqa_fixture import FULL_LIMIT, SAMPLES, summarise

REPO = Path(__file__).resolve().parents[1]
MAX_FIXTURE_BYTES = 3_000_000


def test_fixture_files_are_in_the_repository_and_small() -> None:
    folder = dslfiqa_fixture.fixtures_dir()
    assert folder == REPO / "tests" / "fixtures"
    names = [
        dslfiqa_fixture.FIXTURE_NAME,
        dslfiqa_fixture.MANIFEST_NAME,
        load_fixture()["pipeline"]["image_png"],
    ]
    sizes = {n: (folder / n).stat().st_size for n in names}
    assert sum(sizes.values()) <= MAX_FIXTURE_BYTES, sizes


def test_fixture_loads_without_any_shared_folder(tmp_path: Path) -> None:
    """From another working directory, through the repository's files alone."""
    code = (
        "from tests.support.dslfiqa_fixture import load_fixture, regenerate_weights\n"
        "fix = load_fixture()\n"
        "assert tuple(fix['module']['inputs']['image'].shape) == (2, 3, 384, 384)\n"
        "assert tuple(fix['pipeline']['image_uint8_rgb'].shape) == (512, 512, 3)\n"
        "assert len(regenerate_weights('DE')) == 46\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, env=env)


def test_restored_inputs_have_the_documented_form() -> None:
    fix = load_fixture()
    image = fix["module"]["inputs"]["image"]
    assert image.dtype == torch.float32
    assert -1.0 <= image.min().item() <= image.max().item() <= 1.0
    face = fix["pipeline"]["image_uint8_rgb"]
    assert face.dtype == torch.uint8
    assert face.shape == (512, 512, 3)


def test_large_intermediates_are_summarised_small_ones_kept() -> None:
    inter = load_fixture()["module"]["intermediates"]
    assert inter["vit_features"]["shape"] == [1, 576, 3072]
    assert inter["vit_features"]["values"].numel() == SAMPLES
    assert inter["embed_mlp_out"]["index"] is None
    assert inter["embed_mlp_out"]["values"].numel() == 2 * 576


def test_summary_check_catches_real_deviations() -> None:
    g = torch.Generator().manual_seed(0)
    t = torch.randn(2, 300, 256, generator=g) * 5
    assert t.numel() > FULL_LIMIT
    ref = summarise("x", t)
    dev, scale = intermediate_deviation(t, ref)
    assert dev == 0
    assert scale == t.abs().max().item()
    # A small uniform shift everywhere (e.g. a wrong LayerNorm eps) moves the mean.
    shift = 1e-3 * scale
    assert intermediate_deviation(t + shift, ref)[0] >= shift * 0.99
    # One wrong element among the stored ones is caught exactly.
    bad = t.clone().flatten()
    bad[ref["index"][7].long()] += 1.0
    assert intermediate_deviation(bad.reshape(t.shape), ref)[0] >= 1.0 - 1e-6
    # A wrong shape is an error, not a silent pass.
    with pytest.raises(AssertionError, match="shape"):
        intermediate_deviation(t[:1], ref)


def test_same_content() -> None:
    a = {"x": [torch.zeros(2), 1.0, "s"], "y": np.float64(2).item()}
    assert same_content(a, {"x": [torch.zeros(2), 1.0, "s"], "y": 2.0})
    assert not same_content(a, {"x": [torch.ones(2), 1.0, "s"], "y": 2.0})
    assert not same_content(a, {"x": [torch.zeros(2, dtype=torch.float64), 1.0, "s"], "y": 2.0})
