"""ONNX Runtime backend for an exported DSL-FIQA graph (engines/export.py).

Example:
    >>> engine = OrtQualityEngine("dslfiqa.onnx")  # doctest: +SKIP
    >>> engine.score_crops(crops, landmark_vectors)  # doctest: +SKIP
    array([0.61, 0.58], dtype=float32)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from engines.dslfiqa.variants import (
    ModelVariant,
    config_from_dict,
    get_variant,
    variant_for_config,
)
from engines.quality_engine import CropEngine, EngineInfo, check_mode, make_rng
from engines.runtimes import INPUT_NAMES, META_CONFIG, OUTPUT_NAMES

DEFAULT_PROVIDERS: tuple[str, ...] = ("CPUExecutionProvider",)
# engines.export.META_PRECISION (repeated: that module imports torch).
META_PRECISION = "fqm.precision"


class OrtQualityEngine:
    """Score prepared crops with ONNX Runtime; same contract as ``DslFiqa.score_crops``.

    The session is created and run once (a batch-1 warm-up on zeros) in ``__init__``, so
    allocation and kernel selection do not land on the first real face.

    Args:
        path: ONNX file from :func:`engines.export.export_onnx`.
        providers: execution providers in order of preference. Each must be available in
            this onnxruntime build (ONNX Runtime itself would silently fall back to CPU).
        intra_op_threads: CPU threads per operator; ``None`` lets ONNX Runtime decide.
        warmup: run the warm-up inference.
        variant: the variant the file must be (name or object); ``None`` = the one recorded
            in the file by ``export_onnx``. ``self.variant`` is the input contract (face
            size, crop size, normalisation); None for a file without fqm metadata.
    """

    def __init__(
        self,
        path: str | Path,
        providers: Sequence[str] = DEFAULT_PROVIDERS,
        intra_op_threads: int | None = None,
        warmup: bool = True,
        variant: str | ModelVariant | None = None,
    ):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such ONNX file; write it with export_onnx")
        available = ort.get_available_providers()
        missing = [p for p in providers if p not in available]
        if missing:
            raise ValueError(
                f"execution providers {missing} are not in this onnxruntime build "
                f"(available: {available}); install the matching onnxruntime package or "
                "choose among the available ones"
            )
        options = ort.SessionOptions()
        if intra_op_threads is not None:
            options.intra_op_num_threads = intra_op_threads
        self.session = ort.InferenceSession(
            str(self.path), sess_options=options, providers=list(providers)
        )
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        if tuple(inputs) != INPUT_NAMES or tuple(outputs) != OUTPUT_NAMES:
            raise ValueError(
                f"{self.path}: inputs {list(inputs)} / outputs {outputs}, expected "
                f"{list(INPUT_NAMES)} / {list(OUTPUT_NAMES)}; not a DSL-FIQA export"
            )
        crops_shape: list[Any] = inputs["crops"]
        self.crop_size: int = int(crops_shape[2])
        self.num_landmarks: int = int(inputs["landmarks"][1])
        # An int when the file was exported with a fixed batch, else the axis name.
        self.fixed_batch: int | None = crops_shape[0] if isinstance(crops_shape[0], int) else None
        self.variant = self._variant(variant)
        # fp16 for a file exported with precision="fp16" (its interface is float32 anyway).
        meta = self.session.get_modelmeta().custom_metadata_map
        self.precision: str = meta.get(META_PRECISION, "fp32")
        if warmup:
            b = self.fixed_batch or 1
            self.score_crops(
                np.zeros((b, 3, self.crop_size, self.crop_size), np.float32),
                np.zeros((b, self.num_landmarks), np.float32),
            )

    def _variant(self, requested: str | ModelVariant | None) -> ModelVariant | None:
        meta = self.session.get_modelmeta().custom_metadata_map
        recorded = (
            variant_for_config(config_from_dict(json.loads(meta[META_CONFIG])))
            if META_CONFIG in meta
            else None
        )
        chosen = get_variant(requested) if requested is not None else recorded
        if requested is not None and recorded is not None and recorded.config != chosen.config:
            raise ValueError(
                f"{self.path} was exported from variant {recorded.name!r}, not {chosen.name!r}"
            )
        if chosen is not None and chosen.crop_size != self.crop_size:
            raise ValueError(
                f"{self.path} takes {self.crop_size}-pixel crops, but variant {chosen.name!r} "
                f"has crop_size {chosen.crop_size}"
            )
        return chosen

    @property
    def providers(self) -> list[str]:
        """The providers the session actually uses."""
        return self.session.get_providers()

    def score_crops(self, crops: Any, landmark_vectors: Any) -> np.ndarray:
        """Score already-prepared crops in one run; returns float32 scores [B].

        Args:
            crops: [B,3,S,S] float32 (numpy, or anything ``np.asarray`` takes, e.g. a CPU
                tensor), RGB normalised to [-1,1]; S = ``crop_size`` (the variant's).
            landmark_vectors: [B,500] float32 landmark index vectors.
        """
        x = np.ascontiguousarray(crops, dtype=np.float32)
        lm = np.ascontiguousarray(landmark_vectors, dtype=np.float32)
        s = self.crop_size
        if x.ndim != 4 or x.shape[1:] != (3, s, s):
            raise ValueError(f"crops must be [B,3,{s},{s}], got {x.shape}")
        if lm.shape != (x.shape[0], self.num_landmarks):
            raise ValueError(
                f"landmark_vectors must be [{x.shape[0]},{self.num_landmarks}], got {lm.shape}"
            )
        if self.fixed_batch is not None and x.shape[0] != self.fixed_batch:
            raise ValueError(
                f"{self.path} was exported for batch {self.fixed_batch}, got {x.shape[0]}; "
                "re-export with export_onnx(..., dynamic_batch=True)"
            )
        (scores,) = self.session.run(list(OUTPUT_NAMES), {"crops": x, "landmarks": lm})
        return scores


class OrtFaceEngine(CropEngine):
    """An :class:`OrtQualityEngine` behind the QualityEngine interface (``score_faces``).

    Args:
        path: ONNX file from :func:`engines.export.export_onnx` (with its variant metadata,
            or pass ``variant``).
        providers / intra_op_threads: as :class:`OrtQualityEngine`.
        max_batch: crops per run.
        mode: default crop mode.
        seed: the ``official`` crops' RandomState (int or state); continues across calls.
        variant: the variant the file must be; ``None`` = the one recorded in it.
        on_close: called once by :meth:`close` (e.g. to remove a temporary export).
    """

    backend_name = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        providers: Sequence[str] = DEFAULT_PROVIDERS,
        intra_op_threads: int | None = None,
        *,
        max_batch: int = 8,
        mode: str = "center",
        seed: int | np.random.RandomState | None = None,
        variant: str | ModelVariant | None = None,
        on_close: Callable[[], None] | None = None,
    ):
        self._on_close = on_close
        self.runtime: OrtQualityEngine | None = OrtQualityEngine(
            path, providers=providers, intra_op_threads=intra_op_threads, variant=variant
        )
        if self.runtime.variant is None:
            raise ValueError(
                f"{path} records no model variant (not written by export_onnx); pass variant="
            )
        self.variant = self.runtime.variant
        check_mode(self.variant, mode)
        fixed = self.runtime.fixed_batch
        self.max_batch = max_batch if fixed is None else fixed
        self._rng = make_rng(seed)
        self.info = EngineInfo(
            variant=self.variant.name,
            mode=mode,
            backend=self.backend_name,
            device=",".join(self.runtime.providers),
            precision=self.runtime.precision,
        )

    def score_crops(self, crops: Any, landmark_vectors: Any) -> np.ndarray:
        """As :meth:`OrtQualityEngine.score_crops`."""
        if self.runtime is None:
            raise RuntimeError("this onnxruntime engine is closed; open a new one with open_engine")
        return self.runtime.score_crops(crops, landmark_vectors)

    def close(self) -> None:
        """Drop the session and run ``on_close`` (once)."""
        self.runtime = None
        if self._on_close is not None:
            callback, self._on_close = self._on_close, None
            callback()
