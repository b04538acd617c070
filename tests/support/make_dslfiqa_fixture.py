"""Make the in-repository DSL-FIQA parity fixture from the full one (run by hand).

The full fixture (``dslfiqa_parity.pt``, 32 MB, described by its README) is not part of the
repository. This script writes what the tests need into ``tests/fixtures/``:

* ``dslfiqa_parity_trimmed.pt`` (about 1.2 MB): the weight rule rows, the per-tensor sha256,
  the structural buffers, the module-level and pipeline-level inputs and outputs, and every
  intermediate. Intermediates with more than :data:`FULL_LIMIT` elements are summarised: a
  fixed random subset of :data:`SAMPLES` elements (flat indices + values) plus the tensor's
  max |x|, mean and mean |x|. Each of those three is within max |got - ref| of the
  reference, so the intermediate-parity tests keep the same relative tolerance on them.
* the module case's input image is not stored: it is regenerated from its documented recipe
  (``torch.rand`` seeded with ``meta.module_seed``) and checked against a stored sha256.
* ``dslfiqa_pipeline_face.png`` (0.5 MB): the pipeline case's 512x512 uint8 RGB image,
  lossless (its sha256 is stored too).
* ``dslfiqa_state_dict_manifest.tsv``: copied unchanged.

Usage (from the repository root)::

    .venv/bin/python -m tests.support.make_dslfiqa_fixture /path/to/shared/fixtures
    .venv/bin/python -m tests.support.make_dslfiqa_fixture /path/to/shared/fixtures --check

``--check`` writes nothing and fails if the committed files differ from what would be made.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

FULL_NAME = "dslfiqa_parity.pt"
MANIFEST_NAME = "dslfiqa_state_dict_manifest.tsv"
TRIMMED_NAME = "dslfiqa_parity_trimmed.pt"
PIPELINE_PNG_NAME = "dslfiqa_pipeline_face.png"
OUT_DIR = Path(__file__).resolve().parents[1] / "fixtures"
TRIMMED_FORMAT = "dslfiqa-parity-fixture-trimmed-v1"
# Intermediates up to this many elements are kept whole; larger ones are summarised.
FULL_LIMIT = 65536
SAMPLES = 4096
SAMPLE_SEED = 8  # the subset of each summarised tensor is fixed by this seed and its name


def sha256_bytes(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


def module_image(seed: int) -> torch.Tensor:
    """The module case's input, as the fixture README documents it."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(2, 3, 384, 384, generator=g) - 0.5) / 0.5


def summarise(name: str, t: torch.Tensor) -> dict[str, Any]:
    """A tensor kept whole (``index`` None) or as a seeded subset of its elements."""
    flat = t.detach().float().flatten()
    out: dict[str, Any] = {
        "shape": list(t.shape),
        "max_abs": float(flat.abs().max()),
        "mean": float(flat.double().mean()),
        "abs_mean": float(flat.double().abs().mean()),
    }
    if flat.numel() <= FULL_LIMIT:
        out["index"] = None
        out["values"] = flat.clone()
    else:
        seed = SAMPLE_SEED + int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
        g = torch.Generator().manual_seed(seed)
        index = torch.randperm(flat.numel(), generator=g)[:SAMPLES].sort().values
        out["index"] = index.to(torch.int32)
        out["values"] = flat[index].clone()
    return out


def encode_png(image: np.ndarray) -> bytes:
    """Lossless RGB PNG bytes (PyAV, as ``engines.dataset`` reads them back)."""
    import fractions

    import av

    enc = av.CodecContext.create("png", "w")
    enc.width, enc.height, enc.pix_fmt = image.shape[1], image.shape[0], "rgb24"
    enc.time_base = fractions.Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    return b"".join(bytes(p) for p in [*enc.encode(frame), *enc.encode(None)])


def trim(full: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The trimmed fixture and the pipeline image's PNG bytes."""
    module, pipe = full["module"], full["pipeline"]
    image = module["inputs"]["image"]
    seed = int(full["meta"]["module_seed"])
    if not torch.equal(module_image(seed), image):
        raise SystemExit("the module image does not follow the documented recipe; not trimming")
    face = pipe["image_uint8_rgb"]
    trimmed = {
        "format": TRIMMED_FORMAT,
        "source_format": full["format"],
        "meta": dict(full["meta"]),
        "config": dict(full["config"]),
        "weight_rule": full["weight_rule"],
        "weight_sha256": full["weight_sha256"],
        "structural_buffers": full["structural_buffers"],
        "module": {
            "inputs": {
                **{k: v for k, v in module["inputs"].items() if k != "image"},
                "image_seed": seed,
                "image_sha256": sha256_bytes(image),
            },
            "outputs": module["outputs"],
            "intermediates": {k: summarise(k, v) for k, v in module["intermediates"].items()},
            "intermediates_sample0_only": list(module["intermediates_sample0_only"]),
        },
        "pipeline": {
            **{k: v for k, v in pipe.items() if k != "image_uint8_rgb"},
            "image_png": PIPELINE_PNG_NAME,
            "image_sha256": sha256_bytes(face),
        },
        "observed_deviations": full["observed_deviations"],
        "suggested_tolerance": full["suggested_tolerance"],
    }
    return trimmed, encode_png(face.numpy())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fixtures", type=Path, help=f"folder holding {FULL_NAME}")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    full = torch.load(args.fixtures / FULL_NAME, weights_only=True)
    trimmed, png = trim(full)
    buf = io.BytesIO()
    torch.save(trimmed, buf)
    made = {
        TRIMMED_NAME: buf.getvalue(),
        PIPELINE_PNG_NAME: png,
        MANIFEST_NAME: (args.fixtures / MANIFEST_NAME).read_bytes(),
    }
    if args.check:
        # torch.save output is not byte-stable across versions: compare contents.
        from tests.support.dslfiqa_fixture import same_content

        committed = torch.load(args.out / TRIMMED_NAME, weights_only=True)
        bad = [] if same_content(committed, trimmed) else [TRIMMED_NAME]
        from engines.dataset import read_image_rgb

        face = full["pipeline"]["image_uint8_rgb"].numpy()
        if not np.array_equal(read_image_rgb(args.out / PIPELINE_PNG_NAME), face):
            bad.append(PIPELINE_PNG_NAME)
        if (args.out / MANIFEST_NAME).read_bytes() != made[MANIFEST_NAME]:
            bad.append(MANIFEST_NAME)
        if bad:
            print(f"differs from the full fixture: {bad}", file=sys.stderr)
            return 1
        print(f"{args.out}: up to date")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in made.items():
        (args.out / name).write_bytes(data)
        print(f"{args.out / name}: {len(data) / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
