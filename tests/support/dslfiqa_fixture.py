"""The DSL-FIQA parity fixture (shared/fixtures/dslfiqa_parity.pt): locate, load, regenerate.

The fixture stores a rule instead of weights; :func:`regenerate_weights` rebuilds the exact
official-format state_dicts from it and checks each tensor's sha256, so a torch whose CPU
``randn`` stream changed is reported as such instead of as a model bug.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Any

import torch

FIXTURE_NAME = "dslfiqa_parity.pt"
MANIFEST_NAME = "dslfiqa_state_dict_manifest.tsv"
# Fixture model names -> manifest model names.
MANIFEST_MODEL = {"DE": "degradation_Encoder", "IQA": "IQA"}


def shared_dir() -> Path:
    """``$FQM_SHARED``, else the repository's sibling ``shared/``."""
    env = os.environ.get("FQM_SHARED")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared"


def fixtures_dir() -> Path:
    return shared_dir() / "fixtures"


@functools.cache
def load_fixture() -> dict[str, Any]:
    return torch.load(fixtures_dir() / FIXTURE_NAME, weights_only=True)


def read_manifest() -> dict[str, dict[str, tuple[tuple[int, ...], str]]]:
    """{manifest model: {key: (shape, dtype)}} from the TSV (``scalar`` -> shape ())."""
    out: dict[str, dict[str, tuple[tuple[int, ...], str]]] = {}
    with open(fixtures_dir() / MANIFEST_NAME, encoding="utf-8") as fh:
        rows = [line.rstrip("\n").split("\t") for line in fh if not line.startswith("#")]
    header, body = rows[0], rows[1:]
    col = {name: i for i, name in enumerate(header)}
    for r in body:
        shape_s = r[col["shape"]]
        shape = () if shape_s == "scalar" else tuple(int(s) for s in shape_s.split("x"))
        out.setdefault(r[col["model"]], {})[r[col["key"]]] = (shape, r[col["dtype"]])
    return out


def sha256_of(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


class RandnStreamChanged(AssertionError):
    """This torch's CPU randn stream differs from the one that made the fixture."""


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
