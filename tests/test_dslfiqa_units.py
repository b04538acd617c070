"""DSL-FIQA pieces that need no full model run: keys, loading, buffers, preprocessing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engines import CheckpointError, load_dslfiqa
from engines.dslfiqa.checkpoint import load_strict, read_state_dict
from engines.dslfiqa.decoder import CrossAttention
from engines.dslfiqa.degradation_encoder import DegradationEncoder
from engines.dslfiqa.preprocess import (
    crop_images,
    crop_offsets,
    landmark_vector,
    landmark_vectors,
    normalize_image,
)
from engines.dslfiqa.quality_net import QualityNet
from engines.dslfiqa.swin import (
    relative_position_index,
    shifted_window_mask,
    window_partition,
    window_reverse,
)
from tests.support.dslfiqa_fixture import load_fixture, read_manifest

# DSL_FIQA.md 2.3, verified against the official loader.
SEED20_CROPS = [
    (99, 90), (15, 95), (28, 90), (9, 20), (75, 22), (71, 34), (96, 118), (40, 85), (90, 26),
    (123, 83), (16, 125), (102, 102), (62, 16), (105, 101), (7, 101), (127, 98), (6, 26),
    (13, 75), (58, 25), (3, 74),
]  # fmt: skip


@pytest.fixture(scope="module")
def fix() -> dict[str, Any]:
    return load_fixture()


def _meta_state(net_cls: type[torch.nn.Module]) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return dict(net_cls().state_dict())


def _shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[tuple[int, ...], str]]:
    return {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()}


@pytest.mark.parametrize(
    ("net_cls", "manifest_name"),
    [(DegradationEncoder, "degradation_Encoder"), (QualityNet, "IQA")],
)
def test_state_dict_keys_and_shapes_are_official(
    net_cls: type[torch.nn.Module], manifest_name: str
) -> None:
    assert _shapes(_meta_state(net_cls)) == read_manifest()[manifest_name]


def test_structural_buffers_match_stored(fix: dict[str, Any]) -> None:
    stored = fix["structural_buffers"]
    assert len(stored) == 12
    for key, ref in stored.items():
        mine = (
            shifted_window_mask(24, 4, 2)
            if key.endswith("attn_mask")
            else relative_position_index(4)
        )
        assert mine.dtype == ref.dtype, key
        assert torch.equal(mine, ref), key


def test_window_partition_roundtrip() -> None:
    x = torch.randn(2, 24, 24, 5)
    w = window_partition(x, 4)
    assert w.shape == (2 * 36, 16, 5)
    assert torch.equal(w[1, 0], x[0, 0, 4])  # second window starts at column 4
    assert torch.equal(window_reverse(w, 4, 24, 24), x)


def test_cross_attention_equals_nearest_stretched_query() -> None:
    """The 96-row shortcut equals the official 'interpolate q to 576 rows' formulation."""
    torch.manual_seed(0)
    attn = CrossAttention(32, 4).eval()
    x, style = torch.randn(2, 576, 32), torch.randn(2, 96, 32)
    q = attn.q(style).reshape(2, 96, 4, 8).transpose(1, 2)
    q = F.interpolate(q, size=(576, 8))  # official: nearest
    k, v = attn.kv(x).reshape(2, 576, 2, 4, 8).permute(2, 0, 3, 1, 4).unbind(0)
    a = ((q @ k.transpose(-2, -1)) * attn.scale).softmax(dim=-1)
    ref = attn.proj((a @ v).transpose(1, 2).reshape(2, 576, 32))
    torch.testing.assert_close(attn(x, style), ref, rtol=0, atol=1e-6)


# --- checkpoint loading ---------------------------------------------------------------------


@pytest.fixture
def de_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return dict(DegradationEncoder().state_dict())


def _loaded_equal(state: dict[str, torch.Tensor], source: Any) -> None:
    with torch.device("meta"):
        net = DegradationEncoder()
    load_strict(net, source, "DE")
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_load_from_path_with_weights_only(
    tmp_path: Path, de_state: dict[str, torch.Tensor]
) -> None:
    path = tmp_path / "DE.pt"
    torch.save(de_state, path)
    _loaded_equal(de_state, path)
    _loaded_equal(de_state, str(path))


def test_load_accepts_module_prefix_and_wrapper(de_state: dict[str, torch.Tensor]) -> None:
    prefixed = {f"module.{k}": v for k, v in de_state.items()}
    _loaded_equal(de_state, prefixed)
    _loaded_equal(de_state, {"state_dict": prefixed, "epoch": 3})


def test_load_rejects_pickled_code(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "obj": Path("x")}, path)
    with pytest.raises(Exception, match=r"weights_only|Unsupported global|WeightsUnpickler"):
        read_state_dict(path)


def test_strict_load_lists_missing_unexpected_and_shapes(de_state: dict[str, torch.Tensor]) -> None:
    bad = dict(de_state)
    del bad["E.0.weight"]
    bad["E.99.weight"] = torch.zeros(1)
    bad["mlp.0.bias"] = torch.zeros(7)
    with torch.device("meta"):
        net = DegradationEncoder()
    with pytest.raises(CheckpointError) as err:
        load_strict(net, bad, "DE")
    msg = str(err.value)
    assert "1 missing keys: E.0.weight" in msg
    assert "1 unexpected keys: E.99.weight" in msg
    assert "mlp.0.bias (7,) != (256,)" in msg


def test_load_dslfiqa_reports_iqa_key_problems(de_state: dict[str, torch.Tensor]) -> None:
    iqa = _meta_state(QualityNet)  # shapes suffice: keys are checked before any tensor is used
    del iqa["vit.blocks.3.attn.qkv.weight"]
    iqa["module.extra"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"missing keys: vit\.blocks\.3\.attn\.qkv\.weight"):
        load_dslfiqa(de_state, iqa)


# --- preprocessing --------------------------------------------------------------------------


def test_official_crop_offsets(fix: dict[str, Any]) -> None:
    state = np.random.get_state()[1].copy()
    offsets = crop_offsets("official", 20)
    assert offsets.tolist() == [list(p) for p in SEED20_CROPS]
    assert np.array_equal(offsets, fix["pipeline"]["crops_top_left"].numpy())
    assert np.array_equal(np.random.get_state()[1], state), "the global RNG must not be used"


def test_official_crop_offsets_follow_global_rng_semantics() -> None:
    """A RandomState continues across faces exactly like the official global-RNG stream."""
    rng = np.random.RandomState(20)
    first, second = crop_offsets("official", rng), crop_offsets("official", rng)
    np.random.seed(20)
    expected = [np.random.randint(0, 128) for _ in range(80)]
    assert np.concatenate([first, second]).ravel().tolist() == expected


def test_deterministic_crop_modes() -> None:
    assert crop_offsets("center").tolist() == [[64, 64]]
    assert crop_offsets("fixed5").tolist() == [[0, 0], [0, 128], [128, 0], [128, 128], [64, 64]]
    with pytest.raises(ValueError, match="unknown crop mode"):
        crop_offsets("random")  # type: ignore[arg-type]


def test_pipeline_landmark_vectors_exact(fix: dict[str, Any]) -> None:
    pipe = fix["pipeline"]
    got = landmark_vectors(pipe["landmarks68_xy"].numpy(), pipe["crops_top_left"].numpy())
    assert got.dtype == np.float32
    assert np.array_equal(got, pipe["landmark_vectors"].numpy())


def test_module_landmark_vectors_exact(fix: dict[str, Any]) -> None:
    inputs = fix["module"]["inputs"]
    for b in range(2):
        top, left = inputs["landmark_crop_top_left"][b].tolist()
        got = landmark_vector(inputs["landmark_sets_xy"][b].numpy(), top, left)
        assert np.array_equal(got, inputs["landmark_vector"][b].numpy())


def test_landmark_vector_edges() -> None:
    pts = np.array([[384.0, 384.0], [385.0, 10.0], [0.0, 0.0]])
    v = landmark_vector(pts, 0, 0)  # x == y == 384 is inside (inclusive +384 bound)
    assert v[0] == -1.0
    assert v[1] > -1.0
    np.testing.assert_allclose(v[2:], 1.0, atol=1e-6)  # padding 4 scaled by 4 + 1e-6
    assert np.all(landmark_vector(np.full((68, 2), 600.0), 0, 0) == -1.0)


def test_normalize_and_crop() -> None:
    img = np.zeros((512, 512, 3), np.uint8)
    img[100, 200] = (255, 0, 51)
    chw = normalize_image(img)
    assert chw.shape == (3, 512, 512)
    assert chw.dtype == np.float32
    assert chw[:, 100, 200].tolist() == pytest.approx([1.0, -1.0, -0.6])
    crops = crop_images(chw, np.array([[100, 120], [0, 0]]))
    assert crops.shape == (2, 3, 384, 384)
    assert crops[0, 0, 0, 80] == 1.0
    assert crops[1, 0, 100, 200] == 1.0
    with pytest.raises(ValueError, match="outside"):
        crop_images(chw, np.array([[129, 0]]))
