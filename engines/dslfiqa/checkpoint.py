"""Reading DE.pt / IQA.pt: unwrap, check every key and shape, load strictly.

The official scripts load with ``strict=False`` and would silently run with missing weights;
here any missing, unexpected or mis-shaped key is an error that lists them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

StateDict = Mapping[str, torch.Tensor]
CheckpointSource = str | os.PathLike[str] | StateDict
# Containers some training scripts wrap a state_dict in.
WRAPPER_KEYS: tuple[str, ...] = ("state_dict", "model_state_dict", "model", "net")
DATA_PARALLEL_PREFIX = "module."
MAX_LISTED_KEYS = 20


class CheckpointError(ValueError):
    """A checkpoint does not match the architecture it is loaded into."""


def read_state_dict(source: CheckpointSource) -> dict[str, torch.Tensor]:
    """Path or mapping -> plain ``{key: tensor}`` on CPU, unwrapped and without ``module.``.

    Files are read with ``weights_only=True``: a checkpoint cannot run code on load.
    """
    if isinstance(source, str | os.PathLike):
        obj = torch.load(os.fspath(source), map_location="cpu", weights_only=True)
    else:
        obj = source
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"expected a state_dict (a mapping), got {type(obj).__name__}")
    for key in WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping):
            obj = inner
            break
    out: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"entry {key!r} is a {type(value).__name__}, not a tensor")
        while key.startswith(DATA_PARALLEL_PREFIX):
            key = key[len(DATA_PARALLEL_PREFIX) :]
        out[key] = value
    return out


def _listing(title: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED_KEYS])
    more = f" (+{len(keys) - MAX_LISTED_KEYS} more)" if len(keys) > MAX_LISTED_KEYS else ""
    return f"{len(keys)} {title}: {shown}{more}"


def check_state_dict(model: nn.Module, state: StateDict, what: str) -> None:
    """Raise :class:`CheckpointError` listing missing, unexpected and mis-shaped keys."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    problems = [
        _listing(title, keys)
        for title, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches (checkpoint != model)", shapes),
        )
        if keys
    ]
    if problems:
        raise CheckpointError(
            f"{what} checkpoint does not match the official architecture: "
            + "; ".join(problems)
            + f". Pass the official {what}.pt (or its state_dict) for this model."
        )


def load_strict(model: nn.Module, source: CheckpointSource, what: str) -> nn.Module:
    """Load ``source`` into ``model`` (which may live on the meta device) strictly.

    Floating tensors are cast to the model's dtype (float32); tensors are assigned, not
    copied, so a meta-device model costs no extra memory.
    """
    state = read_state_dict(source)
    check_state_dict(model, state, what)
    expected = model.state_dict()
    state = {k: v.to(expected[k].dtype) if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    return model
