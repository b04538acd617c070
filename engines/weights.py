"""Find, read and load a DSL-FIQA weights folder (DE.pt + IQA.pt) for any registered variant.

A weights folder holds the two official-format state_dicts. Folders written by
``fqm train`` also hold ``model_config.json`` (the sizes they were trained with), which names
their variant; the released checkpoints have no metadata, so their variant is recognised
from the tensor shapes. Every failure is a :class:`CheckpointError` (a ``ValueError``) or a
:class:`DeviceError` whose message names the file and says how to fix it; nothing here knows
about the command line.

Example:
    >>> loaded = load_weights_dir("ckpt/GFIQA", device="cuda")  # doctest: +SKIP
    >>> loaded.variant.name, loaded.model.score_face(face512, landmarks68).score  # doctest: +SKIP
    ('dslfiqa', 0.61)
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engines.dslfiqa.checkpoint import CheckpointError
from engines.dslfiqa.config import MODEL_CONFIG_NAME, ModelConfig
from engines.dslfiqa.variants import (
    CHECKPOINT_FILES,
    VARIANTS,
    ModelVariant,
    get_variant,
    variant_for_config,
)

if TYPE_CHECKING:
    import torch

    from engines.dslfiqa.model import DslFiqa

__all__ = [
    "CHECKPOINT_FILES",
    "DEVICE_TYPES",
    "WEIGHTS_ENV",
    "CheckpointError",
    "DeviceError",
    "LoadedModel",
    "check_device",
    "detect_variant",
    "load_weights_dir",
    "read_checkpoint",
    "resolve_weights_dir",
]

WEIGHTS_ENV = "FQM_WEIGHTS"
DEVICE_TYPES: tuple[str, ...] = ("cpu", "cuda")
# Keys quoted in a mismatch message; the count of the rest follows.
MAX_QUOTED_KEYS = 3
_FOREIGN_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")

Shapes = dict[str, tuple[int, ...]]
StateDict = dict[str, "torch.Tensor"]


class DeviceError(ValueError):
    """A device string torch cannot use on this machine."""


@dataclass(frozen=True)
class LoadedModel:
    """A model loaded from a weights folder: the model, where it came from, and its variant."""

    model: DslFiqa
    folder: Path
    variant: ModelVariant


def _both_files() -> str:
    return " and ".join(CHECKPOINT_FILES)


def resolve_weights_dir(weights: str | os.PathLike[str] | None, env: str = WEIGHTS_ENV) -> Path:
    """``weights``, else the folder named by the environment variable ``env``.

    Raises:
        CheckpointError: neither is set, or the path is not a folder.
    """
    chosen = weights if weights is not None else os.environ.get(env, "").strip() or None
    if chosen is None:
        raise CheckpointError(
            f"no DSL-FIQA weights given: pass a folder holding {_both_files()} "
            f"(fqm: --weights DIR) or set {env}=DIR"
        )
    path = Path(chosen)
    if not path.is_dir():
        named = str(path) if weights is not None else f"{env}={path}"
        raise CheckpointError(f"{named} is not a folder; it must hold {_both_files()}")
    return path


def default_weights_dir(env: str = WEIGHTS_ENV) -> Path:
    """The weights used when none are given: ``$FQM_WEIGHTS`` when set, else the shipped
    DSL-FIQA-Lite weights (docs/model-card-lite.md)."""
    named = os.environ.get(env, "").strip()
    if named:
        return resolve_weights_dir(named)
    from engines.dslfiqa.lite import shipped_weights_dir

    return shipped_weights_dir()


def _load_failure(exc: BaseException) -> str:
    """torch.load's failure in a line, without its advice to load the file unrestricted."""
    text = str(exc)
    found = _FOREIGN_GLOBAL.search(text)
    if found:
        return f"it pickles the Python object {found.group(1)}, not only tensors"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    lines = [ln for ln in lines if "weights_only" not in ln and "trust" not in ln]
    detail = lines[0].split(". ")[0] if lines else "no detail"
    return f"{type(exc).__name__}: {detail[:200]}"


def read_checkpoint(path: str | os.PathLike[str], what: str) -> StateDict:
    """Read one state_dict file (``what`` = ``DE`` or ``IQA``) with tensors only.

    Raises:
        CheckpointError: naming ``path``: missing, unreadable (truncated, not a torch file),
            holding Python objects other than tensors, or not a state_dict.
    """
    from engines.dslfiqa.checkpoint import read_state_dict

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"{path} does not exist: the weights folder must hold the official {what}.pt "
            f"(both {_both_files()}, as released with DSL-FIQA or as fqm train quality "
            "writes them)"
        )
    try:
        return read_state_dict(path)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except Exception as exc:  # torch.load: truncated zip, pickle garbage, foreign globals
        detail = _load_failure(exc)
        if detail.startswith("it pickles"):
            raise CheckpointError(
                f"{path} is not a plain state_dict: {detail}. fqm reads tensors only and never "
                "runs code from a checkpoint; re-save it as torch.save(model.state_dict(), "
                f"'{path.name}') where it was made"
            ) from None
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({detail}); it may be truncated or "
            f"not a torch.save file: download the official {what}.pt again (or copy your "
            "trained one again)"
        ) from None


def check_device(device: str | torch.device) -> torch.device:
    """A torch device that exists here: ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        DeviceError: not a device name, an unsupported type, CUDA without a CUDA device, or
            a CUDA index beyond the devices present.
    """
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(
            f"{device!r} is not a device; use {', '.join(DEVICE_TYPES)} or cuda:N"
        ) from None
    if dev.type not in DEVICE_TYPES:
        raise DeviceError(
            f"device {str(device)!r}: type {dev.type!r} is not supported; use cpu, cuda or cuda:N"
        )
    if dev.type == "cpu":
        return dev
    if not torch.cuda.is_available():
        why = "this torch is a CPU-only build" if torch.version.cuda is None else "none is visible"
        raise DeviceError(f"device {str(device)!r}: no CUDA device ({why}); use cpu")
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise DeviceError(
            f"device {str(device)!r}: this machine has {count} CUDA device(s), "
            f"cuda:0 to cuda:{count - 1}"
        )
    return dev


@functools.cache
def _expected_shapes(config: ModelConfig) -> tuple[Shapes, Shapes]:
    import torch

    with torch.device("meta"):
        de, iqa = config.build_de(), config.build_iqa()
    return (
        {k: tuple(v.shape) for k, v in de.state_dict().items()},
        {k: tuple(v.shape) for k, v in iqa.state_dict().items()},
    )


def _differences(expected: Shapes, state: StateDict) -> list[str]:
    """Keys that are missing, unexpected or of another shape, one short phrase each."""
    out = [f"{k} missing" for k in sorted(set(expected) - set(state))]
    out += [f"{k} unexpected" for k in sorted(set(state) - set(expected))]
    out += [
        f"{k} {tuple(state[k].shape)} != {expected[k]}"
        for k in sorted(set(expected) & set(state))
        if tuple(state[k].shape) != expected[k]
    ]
    return out


def _mismatches(config: ModelConfig, de: StateDict, iqa: StateDict) -> list[str]:
    want_de, want_iqa = _expected_shapes(config)
    return [f"DE {d}" for d in _differences(want_de, de)] + [
        f"IQA {d}" for d in _differences(want_iqa, iqa)
    ]


def _summary(problems: list[str]) -> str:
    quoted = "; ".join(problems[:MAX_QUOTED_KEYS])
    more = len(problems) - MAX_QUOTED_KEYS
    keys = "key differs" if len(problems) == 1 else "keys differ"
    return f"{len(problems)} {keys} ({quoted}{f'; +{more} more' if more > 0 else ''})"


def detect_variant(de: StateDict, iqa: StateDict) -> ModelVariant:
    """The registered variant whose architecture these state_dicts fit exactly.

    Raises:
        CheckpointError: they fit none; the message names the closest variant and its first
            few differing keys.
    """
    scored = [(_mismatches(v.config, de, iqa), v) for v in VARIANTS.values()]
    for problems, v in scored:
        if not problems:
            return v
    problems, closest = min(scored, key=lambda pv: len(pv[0]))
    raise CheckpointError(
        f"these checkpoints fit no known model variant ({', '.join(VARIANTS)}); closest is "
        f"{closest.name!r}: {_summary(problems)}"
    )


def _read_folder_config(folder: Path) -> ModelConfig | None:
    path = folder / MODEL_CONFIG_NAME
    if not path.is_file():
        return None
    try:
        return ModelConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise CheckpointError(
            f"{path} is not a model config written by fqm train ({exc}); "
            "delete it to have the variant recognised from the checkpoints' shapes"
        ) from None


def load_weights_dir(
    weights: str | os.PathLike[str] | None,
    device: str | torch.device = "cpu",
    variant: str | ModelVariant | None = None,
    env: str = WEIGHTS_ENV,
) -> LoadedModel:
    """Load DSL-FIQA from a folder holding DE.pt and IQA.pt, in eval mode on ``device``.

    Args:
        weights: the folder; ``None`` = the folder named by ``$FQM_WEIGHTS`` (``env``).
        device: ``cpu``, ``cuda`` or ``cuda:N`` (checked before anything is read).
        variant: the variant the weights must be; ``None`` = the one the folder's
            ``model_config.json`` names, else the registered one whose shapes they fit.

    Returns:
        :class:`LoadedModel` (model, folder, variant).

    Raises:
        CheckpointError: missing/unreadable files, or weights that fit no known variant (or
            not the requested one); the message is short: the first keys and a count.
        DeviceError: see :func:`check_device`.
    """
    import torch

    from engines.dslfiqa.checkpoint import load_strict
    from engines.dslfiqa.model import DslFiqa, check_structural_buffers

    folder = resolve_weights_dir(weights, env)
    dev = check_device(device)
    from engines.dslfiqa.lite import is_lite_folder, load_lite

    if is_lite_folder(folder):  # DSL-FIQA-Lite: its own config and loader
        lite = load_lite(folder, device=str(dev))
        chosen_lite = variant_for_config(lite.config)
        if variant is not None and get_variant(variant).config != lite.config:
            raise CheckpointError(f"{folder} holds {chosen_lite.name} weights, not {variant}")
        return LoadedModel(lite, folder, chosen_lite)
    declared = _read_folder_config(folder)
    de_path, iqa_path = (folder / name for name in CHECKPOINT_FILES)
    if de_path.is_file() and not iqa_path.is_file() and declared is not None:
        raise CheckpointError(
            f"{folder} holds a degradation encoder only ({de_path.name}, as fqm train "
            f"degradation writes it) and no {iqa_path.name}: train the quality network on it "
            f"(fqm train quality --de {de_path}) and load that output folder"
        )
    de_sd, iqa_sd = read_checkpoint(de_path, "DE"), read_checkpoint(iqa_path, "IQA")
    if variant is not None:
        chosen = get_variant(variant)
        if declared is not None and declared != chosen.config:
            raise CheckpointError(
                f"{folder / MODEL_CONFIG_NAME} says these weights are model config "
                f"{declared.name!r}, not variant {chosen.name!r} (config {chosen.config.name!r})"
            )
    elif declared is not None:
        chosen = variant_for_config(declared)
    else:
        try:
            chosen = detect_variant(de_sd, iqa_sd)
        except CheckpointError as exc:
            raise CheckpointError(f"weights in {folder}: {exc}") from None
    problems = _mismatches(chosen.config, de_sd, iqa_sd)
    if problems:
        raise CheckpointError(
            f"weights in {folder} do not fit variant {chosen.name!r}: {_summary(problems)}"
        )
    with torch.device("meta"):
        de_net, iqa_net = chosen.config.build_de(), chosen.config.build_iqa()
    try:
        load_strict(de_net, de_sd, "DE")
        load_strict(iqa_net, iqa_sd, "IQA")
        check_structural_buffers(iqa_net)
    except CheckpointError as exc:
        raise CheckpointError(f"weights in {folder}: {exc}") from None
    model = DslFiqa(de_net, iqa_net, config=chosen.config).to(dev).eval()
    return LoadedModel(model=model, folder=folder, variant=chosen)
