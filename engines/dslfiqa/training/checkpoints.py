"""Checkpoint files written by training.

* ``IQA.pt`` / ``DE.pt``: a bare ``state_dict`` with the official key names (no
  ``module.`` prefix, no wrapper), exactly what the official scripts save; official-size
  ones load with :func:`engines.dslfiqa.load_dslfiqa`.
* ``model_config.json``: the :class:`ModelConfig` they were built with, so that non-official
  (tiny) sizes can be rebuilt by :func:`load_trained`.
* ``last.pt``: everything needed to resume (weights, optimiser, scheduler, step, RNG state,
  training config). Written to a temporary file and renamed, so a crash never leaves a
  half-written checkpoint in place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engines.dslfiqa.checkpoint import (
    CheckpointSource,
    check_state_dict,
    load_strict,
    read_state_dict,
)
from engines.dslfiqa.config import MODEL_CONFIG_NAME as MODEL_CONFIG_NAME
from engines.dslfiqa.degradation_encoder import DegradationEncoder
from engines.dslfiqa.model import DslFiqa, check_structural_buffers
from engines.dslfiqa.quality_net import QualityNet
from engines.dslfiqa.training.config import ModelConfig

LAST_NAME = "last.pt"


def atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def read_training_state(
    path: Path, checkpoint_format: str, what: str, model_config: ModelConfig
) -> dict[str, Any] | None:
    """Load a trainer's ``last.pt``, or ``None`` when there is none yet.

    Raises ValueError when the file is another kind of checkpoint or was written for another
    model config: resuming it would silently train a different run.
    """
    if not path.is_file():
        return None
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format") != checkpoint_format:
        raise ValueError(f"{path} is not an fqm {what}-training checkpoint")
    if ModelConfig.from_dict(state["model_config"]) != model_config:
        raise ValueError(
            f"{path} was written for model config {state['model_config']['name']!r}, "
            f"not {model_config.name!r}; use the same --tiny setting or a new --out"
        )
    return state


def official_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """CPU copy of ``model.state_dict()`` (unwrapping DataParallel/DDP/compile wrappers)."""
    inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None) or model
    return {k: v.detach().cpu().clone() for k, v in inner.state_dict().items()}


def save_weights(model: nn.Module, path: str | Path, config: ModelConfig) -> Path:
    """Write an official-format state_dict and ``model_config.json`` next to it."""
    path = Path(path)
    atomic_save(official_state_dict(model), path)
    cfg_path = path.with_name(MODEL_CONFIG_NAME)
    cfg_path.write_text(config.to_json() + "\n", encoding="utf-8")
    return path


def read_model_config(folder: str | Path) -> ModelConfig:
    """The config saved next to the weights; official when there is none (released files)."""
    import json

    path = Path(folder) / MODEL_CONFIG_NAME
    if not path.is_file():
        return ModelConfig.official()
    return ModelConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))


def load_into(model: nn.Module, source: CheckpointSource, what: str) -> nn.Module:
    """Strictly copy weights into an existing model, keeping its parameter objects.

    (``load_strict`` assigns new tensors, which would detach them from an optimiser that
    already holds the old ones: use this for anything that is being trained.)
    """
    state = read_state_dict(source)
    check_state_dict(model, state, what)
    model.load_state_dict(state, strict=True)
    return model


def load_de(source: CheckpointSource, config: ModelConfig) -> DegradationEncoder:
    """A DE of ``config``'s size, loaded strictly (same checks as ``load_dslfiqa``)."""
    with torch.device("meta"):
        net = config.build_de()
    return load_strict(net, source, "DE")


def load_iqa(source: CheckpointSource, config: ModelConfig) -> QualityNet:
    with torch.device("meta"):
        net = config.build_iqa()
    load_strict(net, source, "IQA")
    check_structural_buffers(net)
    return net


def load_trained(
    de: CheckpointSource,
    iqa: CheckpointSource,
    config: ModelConfig,
    device: str | torch.device = "cpu",
) -> DslFiqa:
    """Like :func:`load_dslfiqa` for any :class:`ModelConfig` (tiny ones included)."""
    return DslFiqa(load_de(de, config), load_iqa(iqa, config), config=config).to(device).eval()
