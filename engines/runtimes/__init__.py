"""Runtimes that score exported DSL-FIQA graphs; one file per runtime.

``engines.runtimes.onnxruntime.OrtQualityEngine`` runs the ONNX file written by
:func:`engines.export.export_onnx`. The graph interface below is defined here, torch-free,
so that a runtime does not import torch.
"""

INPUT_NAMES: tuple[str, str] = ("crops", "landmarks")
OUTPUT_NAMES: tuple[str] = ("scores",)
# ONNX metadata keys written by export_onnx: the variant name and its ModelConfig as JSON.
META_VARIANT = "fqm.variant"
META_CONFIG = "fqm.model_config"
