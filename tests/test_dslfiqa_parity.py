"""DSL-FIQA parity with the official code, on the in-repository fixture's regenerated weights.

Tolerances are the fixture README's (section 5): de_fea/de_mlp abs 1e-5; scores abs 2e-5;
intermediates abs <= 1e-4 * max|reference|; crop offsets and landmark vectors exact. The
large intermediates are compared on a fixed subset of their elements plus their max |x|,
mean and mean |x| (tests/support/make_dslfiqa_fixture.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from engines import CheckpointError, DslFiqa, load_dslfiqa
from engines.dslfiqa.preprocess import crop_images, landmark_vectors, normalize_image
from tests.support.dslfiqa_fixture import (
    intermediate_deviation,
    load_fixture,
    read_manifest,
    regenerate_weights,
)

DE_TOL = 1e-5
SCORE_TOL = 2e-5
INTERMEDIATE_REL_TOL = 1e-4
# Batch-N vs N batch-1 forwards: same maths, only GEMM blocking differs (official: 6e-8).
BATCH_TOL = 2e-6
PIPELINE_SUBSET = 4  # crops scored in the fast pipeline test; the slow test scores all 20


@pytest.fixture(scope="module")
def fix() -> dict[str, Any]:
    return load_fixture()


@pytest.fixture(scope="module")
def weights() -> dict[str, dict[str, torch.Tensor]]:
    return {m: regenerate_weights(m) for m in ("DE", "IQA")}


@pytest.fixture(scope="module")
def model(weights: dict[str, dict[str, torch.Tensor]]) -> DslFiqa:
    return load_dslfiqa(weights["DE"], weights["IQA"])


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, f"shape {tuple(a.shape)} != reference {tuple(b.shape)}"
    return (a.float() - b.float()).abs().max().item()


def test_regenerated_weights_match_manifest(weights: dict[str, dict[str, torch.Tensor]]) -> None:
    manifest = read_manifest()
    for name, manifest_name in (("DE", "degradation_Encoder"), ("IQA", "IQA")):
        got = {
            k: (tuple(v.shape), str(v.dtype).removeprefix("torch."))
            for k, v in weights[name].items()
        }
        assert got == manifest[manifest_name]


def test_loaded_state_dict_is_the_checkpoint(
    model: DslFiqa, weights: dict[str, dict[str, torch.Tensor]]
) -> None:
    for net, name in ((model.de, "DE"), (model.iqa, "IQA")):
        loaded = net.state_dict()
        assert loaded.keys() == weights[name].keys()
        for k, v in weights[name].items():
            assert torch.equal(loaded[k], v), k


def test_load_rejects_foreign_structural_buffers(
    weights: dict[str, dict[str, torch.Tensor]],
) -> None:
    key = "swintransformer2.layers.1.blocks.1.attn_mask"
    iqa = dict(weights["IQA"])
    iqa[key] = torch.zeros_like(iqa[key])
    with pytest.raises(CheckpointError, match=key.replace(".", r"\.")):
        load_dslfiqa(weights["DE"], iqa)


# Checkpoint-only modules: running any of them would be wasted work (they cannot change the score).
UNUSED_MODULES = (
    "de.mlp",
    "iqa.vit.blocks.10",
    "iqa.vit.blocks.11",
    "iqa.vit.norm",
    "iqa.vit.head",
    "iqa.testmlp",
    "iqa.swintransformer1.downsample",
    "iqa.swintransformer2.downsample",
)


@pytest.fixture(scope="module")
def module_run(fix: dict[str, Any], model: DslFiqa) -> dict[str, Any]:
    """One batch-2 forward of the module case, with the fixture's intermediates captured."""
    iqa = model.iqa
    captured: dict[str, torch.Tensor] = {}

    def keep(name: str, pre: bool = False):
        def hook(_mod: torch.nn.Module, inp: Any, out: Any = None) -> None:
            captured[name] = (inp[0] if pre else out).detach().clone()

        return hook

    taps = {
        "vit_features": iqa.vit,
        "tab1_out": iqa.tablock1[-1],
        "conv1_out": iqa.conv1,
        "swin1_out": iqa.swintransformer1,
        "tab2_out": iqa.tablock2[-1],
        "conv2_out": iqa.conv2,
        "swin2_out": iqa.swintransformer2,
        "conv_decoder_out": iqa.conv_decoder,
        **{f"decoder{i}_out": blk for i, blk in enumerate(iqa.decoder)},
        "embed_mlp_out": iqa.embed_mlp,
        "fc_score_tokens": iqa.fc_score,
        "fc_weight_tokens": iqa.fc_weight,
    }
    handles = [mod.register_forward_hook(keep(name)) for name, mod in taps.items()]
    handles.append(iqa.embed_mlp.register_forward_pre_hook(keep("landmark_encoding", pre=True)))
    modules = dict(model.named_modules())
    called: list[str] = []
    handles += [
        modules[name].register_forward_hook(lambda *_a, n=name: called.append(n))
        for name in UNUSED_MODULES
    ]
    inputs = fix["module"]["inputs"]
    try:
        score = model.score_crops(inputs["image"], inputs["landmark_vector"])
        unused_called = list(called)
        with torch.inference_mode():
            de_fea, de_mlp = model.de(inputs["image"])  # official two outputs, for de_mlp
    finally:
        for h in handles:
            h.remove()
    for name in ("fc_score_tokens", "fc_weight_tokens"):
        captured[name] = captured[name].squeeze(-1)
    return {
        "de_fea": de_fea,
        "de_mlp": de_mlp,
        "score": score,
        "unused_called": unused_called,
        **captured,
    }


def test_score_path_skips_checkpoint_only_modules(module_run: dict[str, Any]) -> None:
    assert module_run["unused_called"] == []


@pytest.mark.parametrize("name", ["de_fea", "de_mlp"])
def test_degradation_encoder_outputs(
    fix: dict[str, Any], module_run: dict[str, Any], name: str
) -> None:
    dev = _max_abs(module_run[name], fix["module"]["outputs"][name])
    assert dev <= DE_TOL, f"{name}: max abs {dev:.3g} > {DE_TOL}"


def test_module_scores(fix: dict[str, Any], module_run: dict[str, Any]) -> None:
    dev = _max_abs(module_run["score"], fix["module"]["outputs"]["score"])
    assert dev <= SCORE_TOL, f"score: max abs {dev:.3g} > {SCORE_TOL}"


INTERMEDIATES = [
    "vit_features",
    "tab1_out",
    "conv1_out",
    "swin1_out",
    "tab2_out",
    "conv2_out",
    "swin2_out",
    "conv_decoder_out",
    "decoder0_out",
    "decoder1_out",
    "decoder2_out",
    "landmark_encoding",
    "embed_mlp_out",
    "fc_score_tokens",
    "fc_weight_tokens",
]


@pytest.mark.parametrize("name", INTERMEDIATES)
def test_module_intermediates(fix: dict[str, Any], module_run: dict[str, Any], name: str) -> None:
    ref = fix["module"]["intermediates"][name]
    got = module_run[name][: ref["shape"][0]]  # some are stored for sample 0 only
    dev, scale = intermediate_deviation(got, ref)
    tol = INTERMEDIATE_REL_TOL * scale
    assert dev <= tol, f"{name}: max abs {dev:.3g} > {tol:.3g}"


def test_batch_equals_single_crops(
    fix: dict[str, Any], model: DslFiqa, module_run: dict[str, Any]
) -> None:
    inputs = fix["module"]["inputs"]
    singles = torch.cat(
        [
            model.score_crops(inputs["image"][i : i + 1], inputs["landmark_vector"][i : i + 1])
            for i in range(inputs["image"].shape[0])
        ]
    )
    dev = _max_abs(singles, module_run["score"])
    assert dev <= BATCH_TOL, f"batch vs single: max abs {dev:.3g} > {BATCH_TOL}"


def _pipeline_inputs(fix: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    pipe = fix["pipeline"]
    return pipe["image_uint8_rgb"].numpy(), pipe["landmarks68_xy"].numpy()


def test_pipeline_crop_scores_subset(fix: dict[str, Any], model: DslFiqa) -> None:
    """The first crops of the pipeline case, as one batch (the whole case is the slow test)."""
    image, landmarks = _pipeline_inputs(fix)
    offsets = fix["pipeline"]["crops_top_left"].numpy()[:PIPELINE_SUBSET]
    crops = crop_images(normalize_image(image), offsets)
    vectors = landmark_vectors(landmarks, offsets)
    assert np.array_equal(vectors, fix["pipeline"]["landmark_vectors"].numpy()[:PIPELINE_SUBSET])
    scores = model.score_crops(crops, vectors)
    dev = _max_abs(scores, fix["pipeline"]["crop_scores"][:PIPELINE_SUBSET])
    assert dev <= SCORE_TOL, f"crop scores: max abs {dev:.3g} > {SCORE_TOL}"


@pytest.mark.slow
def test_pipeline_official_protocol(fix: dict[str, Any], model: DslFiqa) -> None:
    """The whole official test protocol: 20 seeded crops, landmark vectors, mean score."""
    image, landmarks = _pipeline_inputs(fix)
    pipe = fix["pipeline"]
    result = model.score_face(image, landmarks, mode="official", seed=int(pipe["np_seed"]))
    assert np.array_equal(result.crops_top_left, pipe["crops_top_left"].numpy())
    dev = _max_abs(torch.from_numpy(result.crop_scores), pipe["crop_scores"])
    assert dev <= SCORE_TOL, f"crop scores: max abs {dev:.3g} > {SCORE_TOL}"
    pred_dev = abs(result.score - pipe["pred"].item())
    assert pred_dev <= SCORE_TOL, f"pred: abs {pred_dev:.3g} > {SCORE_TOL}"
