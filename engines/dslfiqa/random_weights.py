"""Seeded random weights of any variant's exact shapes: a stand-in model for benchmarks.

Timing the model (``fqm bench quality`` without ``--weights``) or smoke-testing a pipeline
needs a network of the right architecture whose activations stay finite and whose scores
are not all zero; it does not need trained weights. :func:`random_state_dicts` draws every
state_dict tensor from one seeded generator, uniformly (as torch's default layer init does)
with a mean and standard deviation chosen per kind of tensor: normalisation gains near 1,
small biases and embeddings, weight matrices with std ``gain / sqrt(fan_in)`` so that each
layer roughly keeps the variance of its input. The Swin structural buffers are computed
exactly as the model computes them. Scores from these weights carry no meaning about face
quality. Uniform draws come from numpy's PCG64 (about 4x faster than torch's normal on a
CPU): the official ~250 M parameters take about a second.

Example:
    >>> model = build_random("dslfiqa", seed=0)  # doctest: +SKIP
    >>> model.score_face(aligned_rgb_512, landmarks68, mode="center").score  # doctest: +SKIP
"""

from __future__ import annotations

import fnmatch
import math

import numpy as np
import torch
from torch import nn

from engines.dslfiqa.checkpoint import load_strict
from engines.dslfiqa.config import ModelConfig
from engines.dslfiqa.model import DEFAULT_MAX_BATCH, DslFiqa, check_structural_buffers
from engines.dslfiqa.swin import SwinBlock, relative_position_index, shifted_window_mask
from engines.dslfiqa.variants import ModelVariant, get_variant

StateDict = dict[str, torch.Tensor]

# Standard deviation (and mean) per kind of tensor; the first matching rule wins.
RUNNING_MEAN_STD = 0.05
RUNNING_VAR_RANGE = (1.0, 1.2)  # uniform
REL_POS_BIAS_STD = 0.2
EMBEDDING_STD = 0.02  # cls_token, pos_embed, task_query
BIAS_STD = 0.02
NORM_WEIGHT_STD = 0.05  # LayerNorm / BatchNorm gains = 1 + N(0, 0.05)
EMBEDDING_SUFFIXES = ("cls_token", "pos_embed", "task_query")
# Extra gain on gain / sqrt(fan_in) for weight matrices (fnmatch patterns, first match wins):
# ReLU-family layers get sqrt(2); the token-attention blocks would otherwise grow activations
# tenfold; a sharper decoder query and landmark head keep those paths input-dependent; a
# smaller conv_decoder keeps the decoder tokens O(1).
WEIGHT_GAINS: dict[str, tuple[tuple[str, float], ...]] = {
    "DE": (("E.*.weight", math.sqrt(2.0)),),
    "IQA": (
        ("tablock*.weight", 0.5),
        ("decoder.*.attn.q.weight", 2.0),
        ("embed_mlp.3.weight", 4.0),
        ("conv_decoder.weight", 0.25),
    ),
}
# Head biases: a negative fc_score bias would zero most token scores through the final ReLU,
# so the head starts slightly positive; fc_weight's sigmoid starts around 0.6-0.8.
BIAS_OFFSETS: dict[str, float] = {"fc_score.3.bias": 0.5, "fc_weight.3.bias": 1.0}


def _weight_gain(what: str, key: str) -> float:
    for pattern, gain in WEIGHT_GAINS.get(what, ()):
        if fnmatch.fnmatchcase(key, pattern):
            return gain
    return 1.0


def _structural_buffers(net: nn.Module) -> StateDict:
    """The Swin index/mask buffers ``net`` (meta or real) must hold, computed as the model does."""
    out: StateDict = {}
    for name, blk in net.named_modules():
        if isinstance(blk, SwinBlock):
            out[f"{name}.attn.relative_position_index"] = relative_position_index(blk.window)
            if blk.shift:
                mask = shifted_window_mask(blk.resolution, blk.window, blk.shift)
                out[f"{name}.attn_mask"] = mask
    return out


def _uniform(
    shape: tuple[int, ...], mean: float, std: float, rng: np.random.Generator
) -> torch.Tensor:
    """float32 tensor, uniform with this mean and standard deviation."""
    values = np.empty(math.prod(shape), dtype=np.float32)
    rng.random(dtype=np.float32, out=values)
    half_width = std * math.sqrt(3.0)
    t = torch.from_numpy(values).reshape(shape)
    return t.mul_(2 * half_width).add_(mean - half_width)


def _draw(what: str, net: nn.Module, rng: np.random.Generator) -> StateDict:
    structural = _structural_buffers(net)
    state: StateDict = {}
    for key, ref in sorted(net.state_dict().items()):
        shape, last = tuple(ref.shape), key.rsplit(".", 1)[-1]
        if key in structural:
            state[key] = structural[key]
            continue
        if last == "num_batches_tracked":
            state[key] = torch.zeros(shape, dtype=torch.int64)
            continue
        if last == "running_var":
            lo, hi = RUNNING_VAR_RANGE
            mean, std = (lo + hi) / 2, (hi - lo) / math.sqrt(12.0)
        elif last == "running_mean":
            mean, std = 0.0, RUNNING_MEAN_STD
        elif last == "relative_position_bias_table":
            mean, std = 0.0, REL_POS_BIAS_STD
        elif last in EMBEDDING_SUFFIXES:
            mean, std = 0.0, EMBEDDING_STD
        elif last == "bias":
            mean, std = BIAS_OFFSETS.get(key, 0.0), BIAS_STD
        elif last == "weight" and len(shape) == 1:
            mean, std = 1.0, NORM_WEIGHT_STD
        elif last == "weight":
            mean, std = 0.0, _weight_gain(what, key) / math.sqrt(math.prod(shape[1:]))
        else:
            raise ValueError(f"no random-weight rule for {what} tensor {key!r} {shape}")
        state[key] = _uniform(shape, mean, std, rng)
    return state


def _config_of(variant: str | ModelVariant | ModelConfig) -> ModelConfig:
    return variant if isinstance(variant, ModelConfig) else get_variant(variant).config


def random_state_dicts(
    variant: str | ModelVariant | ModelConfig = "dslfiqa", seed: int = 0
) -> tuple[StateDict, StateDict]:
    """Official-format ``(DE, IQA)`` state_dicts of ``variant``'s shapes, drawn from ``seed``.

    Same keys, shapes and dtypes as that variant's checkpoints (they load strictly); the
    same seed gives the same tensors on the same torch version.
    """
    config = _config_of(variant)
    with torch.device("meta"):
        de, iqa = config.build_de(), config.build_iqa()
    rng = np.random.default_rng(seed)
    return _draw("DE", de, rng), _draw("IQA", iqa, rng)


def build_random(
    variant: str | ModelVariant | ModelConfig = "dslfiqa",
    seed: int = 0,
    device: str | torch.device = "cpu",
    max_batch: int = DEFAULT_MAX_BATCH,
) -> DslFiqa:
    """A :class:`DslFiqa` of ``variant`` with :func:`random_state_dicts` weights, in eval mode."""
    config = _config_of(variant)
    de_sd, iqa_sd = random_state_dicts(config, seed)
    with torch.device("meta"):
        de, iqa = config.build_de(), config.build_iqa()
    load_strict(de, de_sd, "DE")
    load_strict(iqa, iqa_sd, "IQA")
    check_structural_buffers(iqa)
    return DslFiqa(de, iqa, max_batch, config).to(device).eval()
