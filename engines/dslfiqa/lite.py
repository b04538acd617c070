"""DSL-FIQA-Lite: the DSL-FIQA structure at a size that scores faces in real time on a CPU.

The official model (``engines.dslfiqa.quality_net``) runs a ViT-B/16 over 384-pixel crops of a
512 face: ~2-4 s per crop on a CPU. Lite keeps every part of its structure and shrinks each:

============================  =================================  ==============================
part                          official (``dslfiqa``)             lite (``dslfiqa-lite``)
============================  =================================  ==============================
input                         384 crops of a 512 face            128 centre crop of a 144 face
degradation encoder           6 conv-BN-LeakyReLU, 8x12 x 256    5 conv-BN-LeakyReLU, 2x2 x 64
backbone                      ViT-B/16, 4 blocks' features       depthwise-separable CNN,
                                                                 stride 16, 2 stages' features
attention stage 1             2 TAB + Swin (2 blocks)            TAB + MHSA block (global, 8x8)
attention stage 2             2 TAB + Swin (2 blocks), C/2       TAB + MHSA block, C/2
decoder                       3 cross-attention blocks,          2 cross-attention blocks,
                              queries from degradation tokens    queries from degradation tokens
landmark weighting            landmark vector -> per-token       the same, hidden width 16
                              channel (MLP 10500 -> 576)
head                          fc_score x fc_weight,              the same
                              weighted mean over tokens
============================  =================================  ==============================

The TAB, the cross-attention decoder block, the landmark encoding and the head are the
official modules themselves (:class:`~engines.dslfiqa.tab.TABlock`,
:class:`~engines.dslfiqa.decoder.DecoderBlock`,
:func:`~engines.dslfiqa.quality_net.encode_landmarks`), at lite widths. The input contract is
the one every variant has (``docs/models.md``): an aligned 512 face and its 68 landmarks;
the face is area-resized to ``image_size``, cut into crops of ``crop_size`` (mode ``center``
for the stream path), normalised ``(x/255 - 0.5)/0.5`` RGB, and each crop comes with its
500-value landmark index vector. So the ONNX graph has the same named inputs and output as
the official export (``crops``, ``landmarks`` -> ``scores``) and every runtime's crop
preparation (:func:`engines.quality_engine.prepare_faces`) feeds it unchanged.

Weights: ``DE.pt`` / ``IQA.pt`` state_dicts plus ``model_config.json`` (with
``"arch": "lite"``), as every fqm weights folder; :func:`shipped_weights_dir` is the folder
inside the package that ``fqm train lite`` reproduces (docs/model-card-lite.md).

Example:
    >>> model = load_lite()  # the shipped weights  # doctest: +SKIP
    >>> model.score_face(aligned512, landmarks68).score  # doctest: +SKIP
    0.83
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from engines.dslfiqa.constants import NUM_LANDMARK
from engines.dslfiqa.decoder import DecoderBlock
from engines.dslfiqa.lite_config import LITE_ARCH, LiteConfig, LiteConfigError
from engines.dslfiqa.model import FaceQualityModel
from engines.dslfiqa.quality_net import LANDMARK_OCTAVES, WeightedScoreHead
from engines.dslfiqa.tab import TABlock

MODEL_CONFIG_NAME = "model_config.json"
DE_FILE, IQA_FILE = "DE.pt", "IQA.pt"
# Inside the package: the weights `fqm train lite` reproduces (docs/model-card-lite.md).
SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "weights" / "lite"
DE_LEAKY_SLOPE = 0.1
LN_EPS = 1e-6


# ------------------------------------------------------------------------------- blocks
class ConvBN(nn.Sequential):
    """Conv (no bias) + BatchNorm + optional ReLU: the ONNX export folds BN into the conv."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act=True):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class SeparableBlock(nn.Module):
    """Depthwise 3x3 (stride s) + pointwise 1x1; residual when the shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.dw = ConvBN(cin, cin, 3, stride, groups=cin)
        self.pw = ConvBN(cin, cout, 1, act=stride != 1 or cin != cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(x))
        return torch.relu(x + y) if self.residual else y


class LiteBackbone(nn.Module):
    """Stride-2 stem, then stages of depthwise-separable blocks (stride 2 at each start).

    Returns the maps of ``feature_stages``, average-pooled to the last stage's grid and
    concatenated along channels: multi-level features, as the official model concatenates
    ViT blocks 6-9.
    """

    def __init__(self, config: LiteConfig):
        super().__init__()
        self.stem = ConvBN(3, config.stem, 3, 2)
        cin = config.stem
        stages = []
        for width, blocks in config.stages:
            layers = [SeparableBlock(cin, width, 2)]
            layers += [SeparableBlock(width, width, 1) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layers))
            cin = width
        self.stages = nn.ModuleList(stages)
        self.feature_stages = tuple(config.feature_stages)
        last = len(config.stages) - 1
        # Earlier stages' maps are 2**(last - i) times larger than the last grid.
        self.pools = nn.ModuleList(
            nn.AvgPool2d(2 ** (last - i)) if i < last else nn.Identity()
            for i in self.feature_stages
        )
        self.out_dim = sum(config.stages[i][0] for i in self.feature_stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.feature_stages:
                feats.append(self.pools[self.feature_stages.index(i)](x))
        return torch.cat(feats, dim=1)


class AttentionBlock(nn.Module):
    """Pre-LN multi-head self-attention + MLP over all tokens of the (small) grid.

    Where the official model runs Swin blocks (4x4 windows over 24x24 tokens), the lite
    grid (8x8) is small enough for one global window.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = nn.Sequential(
            nn.Linear(dim, dim * mlp_ratio), nn.GELU(), nn.Linear(dim * mlp_ratio, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, N, C]
        _, n, c = x.shape
        hd = c // self.heads
        qkv = self.qkv(self.norm1(x)).reshape(-1, n, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = ((q @ k.transpose(-2, -1)) * hd**-0.5).softmax(dim=-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(-1, n, c))
        return x + self.mlp(self.norm2(x))


class LiteDegradationEncoder(nn.Module):
    """Crop -> degradation tokens [B, rows, cols, C] (channels-last, as the official DE)."""

    def __init__(self, config: LiteConfig):
        super().__init__()
        layers: list[nn.Module] = []
        for cin, cout, stride in config.de_convs:
            layers += [
                nn.Conv2d(cin, cout, 3, stride, 1),
                nn.BatchNorm2d(cout),
                nn.LeakyReLU(DE_LEAKY_SLOPE),
            ]
        layers.append(nn.AdaptiveAvgPool2d(config.de_pool))
        self.E = nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.E(x).permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


class LiteQualityNet(WeightedScoreHead, nn.Module):
    """Backbone -> (TAB, attention) x 2 -> cross-attention decoder -> landmark-weighted head.

    Inputs: ``x`` [B,3,S,S] in [-1,1], ``style`` [B,r,c,D] degradation tokens, ``landmarks``
    [B,500]. Output: scores [B].
    """

    def __init__(self, config: LiteConfig):
        super().__init__()
        g, dim, half, d = config.grid, config.embed_dim, config.embed_dim // 2, config.de_dim
        n = g * g
        self.grid = g
        self.backbone = LiteBackbone(config)
        self.tablock1 = TABlock(n)
        self.conv1 = nn.Conv2d(self.backbone.out_dim, dim, 1)
        self.attn1 = AttentionBlock(dim, config.heads, config.mlp_ratio)
        self.tablock2 = TABlock(n)
        self.conv2 = nn.Conv2d(dim, half, 1)
        self.attn2 = AttentionBlock(half, config.heads, config.mlp_ratio)
        self.conv_decoder = nn.Conv2d(half, d, 1)
        self.decoder = nn.ModuleList(
            DecoderBlock(d, config.decoder_heads, config.decoder_mlp_ratio, grid=g)
            for _ in range(config.decoder_depth)
        )
        enc_dim = NUM_LANDMARK * (1 + 2 * LANDMARK_OCTAVES)
        p = config.dropout
        self.embed_mlp = nn.Sequential(
            nn.Linear(enc_dim, config.landmark_hidden),
            nn.ReLU(),
            nn.Dropout(p),
            nn.Linear(config.landmark_hidden, n),
            nn.Sigmoid(),
        )
        head_in = d + 1
        self.fc_score = nn.Sequential(
            nn.Linear(head_in, head_in), nn.ReLU(), nn.Dropout(p), nn.Linear(head_in, 1), nn.ReLU()
        )
        self.fc_weight = nn.Sequential(
            nn.Linear(head_in, head_in),
            nn.ReLU(),
            nn.Dropout(p),
            nn.Linear(head_in, 1),
            nn.Sigmoid(),
        )
        self._init()

    def _init(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        # Token scores start positive (a ReLU head at 0 has no gradient).
        nn.init.constant_(self.fc_score[3].bias, 0.5)

    def _grid(self, t: torch.Tensor) -> torch.Tensor:  # [B,C,N] -> [B,C,g,g]
        return t.reshape(-1, t.shape[1], self.grid, self.grid)

    def forward_features(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Image + degradation tokens -> decoder tokens [B, N, D]."""
        t = self.tablock1(self.backbone(x).flatten(2))  # channels x tokens, as official
        t = self.conv1(self._grid(t)).flatten(2).transpose(1, 2)
        t = self.attn1(t).transpose(1, 2)
        t = self.tablock2(t)
        t = self.conv2(self._grid(t)).flatten(2).transpose(1, 2)
        t = self.attn2(t).transpose(1, 2)
        t = self.conv_decoder(self._grid(t)).flatten(2).transpose(1, 2)
        s = style.flatten(1, 2)
        for blk in self.decoder:
            t = blk(t, s)
        return t


class DslFiqaLite(FaceQualityModel):
    """Lite degradation encoder + quality network; the export graph and ``score_face``.

    Same interface as :class:`engines.dslfiqa.model.DslFiqa`: ``forward(crops, landmarks)``
    -> scores, ``score_crops``, ``score_face`` (resizes the aligned 512 face itself); one
    centre crop by default, as the stream path scores it.
    """

    default_mode = "center"

    def __init__(self, de: LiteDegradationEncoder, iqa: LiteQualityNet, config: LiteConfig):
        super().__init__()
        self.de = de
        self.iqa = iqa
        self.config = config
        self.max_batch = 32


# --------------------------------------------------------------------------- weights
def save_lite(model: DslFiqaLite, folder: str | Path) -> Path:
    """Write ``DE.pt``, ``IQA.pt`` (plain state_dicts) and ``model_config.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, net in ((DE_FILE, model.de), (IQA_FILE, model.iqa)):
        state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        tmp = folder / f".{name}.tmp"
        torch.save(state, tmp)
        tmp.replace(folder / name)
    (folder / MODEL_CONFIG_NAME).write_text(model.config.to_json() + "\n")
    return folder


def read_lite_config(folder: str | Path) -> LiteConfig:
    path = Path(folder) / MODEL_CONFIG_NAME
    if not path.is_file():
        raise LiteConfigError(f"{folder} has no {MODEL_CONFIG_NAME}; not a lite weights folder")
    return LiteConfig.from_dict(json.loads(path.read_text()))


def is_lite_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds lite weights (its model_config.json says ``arch: lite``)."""
    path = Path(folder) / MODEL_CONFIG_NAME
    try:
        return json.loads(path.read_text()).get("arch") == LITE_ARCH
    except (OSError, ValueError, AttributeError):
        return False


def shipped_weights_dir() -> Path:
    """The weights folder in the package (docs/model-card-lite.md)."""
    return SHIPPED_WEIGHTS


def load_lite(folder: str | Path | None = None, device: str = "cpu") -> DslFiqaLite:
    """Build DSL-FIQA-Lite from a weights folder (default: the shipped one), eval mode.

    Tensors only are read (``weights_only``); keys and shapes are checked strictly.
    """
    folder = Path(folder) if folder is not None else SHIPPED_WEIGHTS
    config = read_lite_config(folder)
    model = config.build()
    for name, net in ((DE_FILE, model.de), (IQA_FILE, model.iqa)):
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; a lite weights folder holds DE.pt, IQA.pt")
        state = torch.load(path, map_location="cpu", weights_only=True)
        want = net.state_dict()
        missing = sorted(set(want) - set(state))
        unexpected = sorted(set(state) - set(want))
        bad = sorted(k for k in set(want) & set(state) if state[k].shape != want[k].shape)
        if missing or unexpected or bad:
            raise LiteConfigError(
                f"{path} does not fit its model_config.json: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}, other shapes {bad[:3]}"
            )
        net.load_state_dict(state)
    return model.to(device).eval()


def count_macs(model: DslFiqaLite, batch: int = 1) -> int:
    """Multiply-accumulates of one forward (convs, linears and attention matmuls)."""
    macs = 0

    def conv_hook(m: nn.Conv2d, _inp, out):
        nonlocal macs
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        macs += out.numel() * k

    def linear_hook(m: nn.Linear, inp, out):
        nonlocal macs
        macs += out.numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    c = model.config
    crops = torch.zeros(batch, 3, c.crop_size, c.crop_size)
    with torch.inference_mode():
        model.eval()(crops, torch.zeros(batch, NUM_LANDMARK))
    for h in handles:
        h.remove()
    n, d, m = c.grid**2, c.de_dim, c.de_pool[0] * c.de_pool[1]
    feat, half = model.iqa.backbone.out_dim, c.embed_dim // 2
    macs += batch * 2 * n * (feat**2 + c.embed_dim**2)  # TAB: q k^T and A v over channels
    macs += batch * 2 * n * n * (c.embed_dim + half)  # MHSA: q k^T and A v over tokens
    macs += batch * c.decoder_depth * 2 * m * n * d  # cross-attention, 4 query rows
    return int(macs)


# ---------------------------------------------------------------------------- export
def export_lite_onnx(model: DslFiqaLite, path: str | Path, opset: int = 17) -> Path:
    """Write the lite graph as ONNX with the official interface and fqm metadata.

    Inputs ``crops`` [batch,3,S,S] and ``landmarks`` [batch,500], output ``scores`` [batch]
    (the names and axes of :func:`engines.export.export_onnx`); checked with
    ``onnx.checker``. The metadata holds ``fqm.variant`` = ``dslfiqa-lite`` and the lite
    config under ``fqm.lite_config``. It has no ``fqm.model_config`` (that key holds an
    official-structure ``ModelConfig``), so open it with ``variant="dslfiqa-lite"``.
    """
    import onnx

    from engines.export import BATCH_AXIS, TRACE_BATCH, check_onnx
    from engines.runtimes import INPUT_NAMES, META_VARIANT, OUTPUT_NAMES

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    c = model.crop_size
    g = torch.Generator().manual_seed(0)
    example = (
        torch.rand(TRACE_BATCH, 3, c, c, generator=g) * 2 - 1,
        torch.rand(TRACE_BATCH, NUM_LANDMARK, generator=g) * 2 - 1,
    )
    axes = {name: {0: BATCH_AXIS} for name in (*INPUT_NAMES, *OUTPUT_NAMES)}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            torch.onnx.export(
                model.cpu(),
                example,
                str(path),
                input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES),
                dynamic_axes=axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    finally:
        model.train(was_training)
    proto = onnx.load(str(path))
    props = {p.key: p.value for p in proto.metadata_props}
    props[META_VARIANT] = "dslfiqa-lite"
    props[META_LITE_CONFIG] = model.config.to_json()
    props["fqm.precision"] = "fp32"
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(path))
    check_onnx(path, c)
    return path


META_LITE_CONFIG = "fqm.lite_config"
