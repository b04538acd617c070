"""The DSL-FIQA parity fixture, trimmed into the repository (tests/fixtures/): load, regenerate.

``tests/fixtures/dslfiqa_parity_trimmed.pt`` is made from the full 32 MB fixture by
``tests/support/make_dslfiqa_fixture.py`` (see its docstring): it keeps the weight rule, the
sha256 of every weight, the inputs and outputs, and summarises the large intermediates. The
fixture stores a rule instead of weights; :func:`regenerate_weights` rebuilds the exact
official-format state_dicts from it and checks each tensor's sha256, so a torch whose CPU
``randn`` stream changed is reported as such instead of as a model bug.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import torch

FIXTURES_DIR = Path(__file__).resolve().parents[1] / "fixtures"
FIXTURE_NAME = "dslfiqa_parity_trimmed.pt"
MANIFEST_NAME = "dslfiqa_state_dict_manifest.tsv"
# Fixture model names -> manifest model names.
MANIFEST_MODEL = {"DE": "degradation_Encoder", "IQA": "IQA"}


def fixtures_dir() -> Path:
    """``tests/fixtures`` of this checkout."""
    return FIXTURES_DIR


def sha256_of(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


class RandnStreamChanged(AssertionError):
    """This torch's CPU randn stream differs from the one that made the fixture."""


@functools.cache
def load_fixture() -> dict[str, Any]:
    """The trimmed fixture, with its two images restored and checked by sha256.

    ``fix["module"]["inputs"]["image"]`` is regenerated from its seed (fixture README 2) and
    ``fix["pipeline"]["image_uint8_rgb"]`` decoded from the PNG beside the fixture, so both
    have the full fixture's layout. ``fix["module"]["intermediates"][name]`` is a summary
    (see :func:`intermediate_deviation`).
    """
    from engines.dataset import read_image_rgb

    fix = torch.load(FIXTURES_DIR / FIXTURE_NAME, weights_only=True)
    inputs = fix["module"]["inputs"]
    g = torch.Generator().manual_seed(inputs["image_seed"])
    image = (torch.rand(2, 3, 384, 384, generator=g) - 0.5) / 0.5
    if sha256_of(image) != inputs["image_sha256"]:
        raise RandnStreamChanged(
            f"torch {torch.__version__} regenerates the module image differently from the "
            f"fixture's torch {fix['meta']['torch']} (CPU torch.rand stream changed)"
        )
    inputs["image"] = image
    pipe = fix["pipeline"]
    face = torch.from_numpy(read_image_rgb(FIXTURES_DIR / pipe["image_png"]))
    if sha256_of(face) != pipe["image_sha256"]:
        raise AssertionError(f"{pipe['image_png']} does not decode to the fixture's pixels")
    pipe["image_uint8_rgb"] = face
    return fix


def intermediate_deviation(got: torch.Tensor, ref: dict[str, Any]) -> tuple[float, float]:
    """(max abs deviation, tolerance scale max|ref|) of a tensor against its summary.

    The deviation covers the stored elements (all of them, or the fixed subset) and the
    tensor's max |x|, mean and mean |x|: each of those statistics is within max|got - ref|
    of the reference's, so one tolerance applies to all.
    """
    assert list(got.shape) == ref["shape"], f"shape {list(got.shape)} != {ref['shape']}"
    flat = got.detach().float().flatten()
    picked = flat if ref["index"] is None else flat[ref["index"].long()]
    devs = [
        (picked - ref["values"]).abs().max().item(),
        abs(flat.abs().max().item() - ref["max_abs"]),
        abs(flat.double().mean().item() - ref["mean"]),
        abs(flat.double().abs().mean().item() - ref["abs_mean"]),
    ]
    return max(devs), ref["max_abs"]


def same_content(a: Any, b: Any) -> bool:
    """Deep equality of fixture structures (tensors compared with ``torch.equal``)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and torch.equal(a, b)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_content(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_content(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def read_manifest() -> dict[str, dict[str, tuple[tuple[int, ...], str]]]:
    """{manifest model: {key: (shape, dtype)}} from the TSV (``scalar`` -> shape ())."""
    out: dict[str, dict[str, tuple[tuple[int, ...], str]]] = {}
    with open(FIXTURES_DIR / MANIFEST_NAME, encoding="utf-8") as fh:
        rows = [line.rstrip("\n").split("\t") for line in fh if not line.startswith("#")]
    header, body = rows[0], rows[1:]
    col = {name: i for i, name in enumerate(header)}
    for r in body:
        shape_s = r[col["shape"]]
        shape = () if shape_s == "scalar" else tuple(int(s) for s in shape_s.split("x"))
        out.setdefault(r[col["model"]], {})[r[col["key"]]] = (shape, r[col["dtype"]])
    return out


def regenerate_weights(model: str) -> dict[str, torch.Tensor]:
    """Rebuild the fixture's ``DE`` or ``IQA`` state_dict with the documented rule.

    Raises :class:`RandnStreamChanged` listing the keys whose sha256 does not match.
    """
    fix = load_fixture()
    rule = fix["weight_rule"]
    base = rule["base_seed"][model]
    state: dict[str, torch.Tensor] = {}
    for i, row in enumerate(rule[model]):
        assert row["index"] == i
        assert row["seed"] == base + i
        shape = tuple(row["shape"])
        if row["dist"] == "zeros":
            t = torch.zeros(shape, dtype=torch.int64)
        elif row["dist"] == "copy":
            t = fix["structural_buffers"][row["key"]].clone()
        else:
            g = torch.Generator().manual_seed(row["seed"])
            t = torch.randn(shape, generator=g, dtype=torch.float32)
            if row["dist"] == "abs_normal":
                t = t.abs()
            t = t.mul(row["scale"]).add(row["offset"])
        state[row["key"]] = t
    keys = [row["key"] for row in rule[model]]
    assert keys == sorted(keys), "rule rows must follow the sorted key order"
    bad = [k for k, t in state.items() if sha256_of(t) != fix["weight_sha256"][model][k]]
    if bad:
        raise RandnStreamChanged(
            f"torch {torch.__version__} regenerates {len(bad)} {model} tensors differently "
            f"from the fixture's torch {fix['meta']['torch']} (first: {bad[:5]})"
        )
    return state
