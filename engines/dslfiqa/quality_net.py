"""Quality network (IQA.pt): ViT features -> TAB/Swin stages -> degradation decoder -> score.

Submodule names mirror the official ``IQA`` module so that ``state_dict`` keys and shapes are
the official ones. Modules that exist only in the checkpoint (``testmlp``, Swin
``downsample``, ``task_query``, ViT blocks 10-11/``norm``/``head``) are kept for strict
loading and never run.
"""

from __future__ import annotations

import torch
from torch import nn

from engines.dslfiqa.decoder import DecoderBlock
from engines.dslfiqa.swin import SwinStage
from engines.dslfiqa.tab import TABlock
from engines.dslfiqa.vit import (
    FEATURE_BLOCKS,
    VIT_DEPTH,
    VIT_EMBED_DIM,
    VIT_HEADS,
    VIT_IMG_SIZE,
    VIT_PATCH,
    VisionTransformer,
)

GRID = 24  # 384 / 16
NUM_TOKENS = GRID * GRID
NUM_LANDMARK = 500
# The encoding always uses 10 octaves (the config's ``freq`` is ignored by the official code).
LANDMARK_OCTAVES = 10
LANDMARK_ENC_DIM = NUM_LANDMARK * (1 + 2 * LANDMARK_OCTAVES)
DECODER_DIM = 256
DECODER_DEPTH = 3
DECODER_HEADS = 8
HEAD_DIM_IN = DECODER_DIM + 1  # decoder channels + the landmark channel


def encode_landmarks(vec: torch.Tensor) -> torch.Tensor:
    """[B,500] -> [B,10500]: v, sin(v), cos(v), sin(2v), cos(2v), ..., cos(512v), float32."""
    parts = [vec]
    for k in range(LANDMARK_OCTAVES):
        scaled = vec * float(2**k)
        parts += [torch.sin(scaled), torch.cos(scaled)]
    return torch.cat(parts, dim=-1)


class WeightedScoreHead:
    """The family's score head, shared by :class:`QualityNet` and the Lite network: each
    token gets the landmark channel (``embed_mlp``), then a score (``fc_score``) and a weight
    (``fc_weight``); the face's score is the weighted mean. Subclasses provide those three
    modules and ``forward_features(x, style) -> tokens``."""

    def forward_head(self, tokens: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """Append the landmark channel, then the weighted mean of per-token scores -> [B]."""
        lm = self.embed_mlp(encode_landmarks(landmarks)).unsqueeze(-1)
        h = torch.cat((tokens, lm), dim=-1)
        f = self.fc_score(h).squeeze(-1)
        w = self.fc_weight(h).squeeze(-1)
        return (f * w).sum(dim=1) / w.sum(dim=1)

    def forward(
        self, x: torch.Tensor, style: torch.Tensor, landmarks: torch.Tensor
    ) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, style), landmarks)


class QualityNet(WeightedScoreHead, nn.Module):
    """Score a normalised crop given its degradation tokens and landmark index vector.

    Inputs: ``x`` [B,3,384,384] in [-1,1], ``style`` [B,8,12,256] (DE ``forward_features``),
    ``landmarks`` [B,500] float32. Output: scores [B]. Any batch size; no loop over it.
    """

    def __init__(
        self,
        embed_dim: int = VIT_EMBED_DIM,
        dim_mlp: int = 768,
        num_heads: tuple[int, int] = (4, 4),
        window_size: int = 4,
        depths: tuple[int, int] = (2, 2),
        num_tab: int = 2,
        *,
        img_size: int = VIT_IMG_SIZE,
        patch_size: int = VIT_PATCH,
        vit_depth: int = VIT_DEPTH,
        vit_heads: int = VIT_HEADS,
        feature_blocks: tuple[int, ...] = FEATURE_BLOCKS,
        decoder_dim: int = DECODER_DIM,
        decoder_heads: int = DECODER_HEADS,
        decoder_depth: int = DECODER_DEPTH,
        num_landmark: int = NUM_LANDMARK,
        landmark_hidden: int | None = None,
    ):
        """Defaults are the official architecture (config.conf, DSL_FIQA.md 1).

        The keyword-only size parameters exist so that a tiny model with the same module
        tree and state_dict keys can be trained in tests; they do not change the official
        forward. ``landmark_hidden`` is the hidden width of ``embed_mlp`` (official: equal to
        the encoding width, 10500). ``decoder_dim`` must equal the degradation encoder's
        token width, and the token count ``(img_size/patch_size)**2`` must be a multiple of
        the number of degradation tokens (the query stretch, DSL_FIQA.md 4.6).
        """
        super().__init__()
        grid = img_size // patch_size
        num_tokens = grid * grid
        enc_dim = num_landmark * (1 + 2 * LANDMARK_OCTAVES)
        hidden = enc_dim if landmark_hidden is None else landmark_hidden
        head_in = decoder_dim + 1  # decoder channels + the landmark channel
        feat_dim = embed_dim * len(feature_blocks)
        half = embed_dim // 2
        self.grid = grid
        self.vit = VisionTransformer(
            img_size=img_size,
            patch=patch_size,
            dim=embed_dim,
            depth=vit_depth,
            num_heads=vit_heads,
            feature_blocks=feature_blocks,
        )
        self.tablock1 = nn.ModuleList(TABlock(num_tokens) for _ in range(num_tab))
        self.conv1 = nn.Conv2d(feat_dim, embed_dim, 1)
        self.swintransformer1 = SwinStage(embed_dim, grid, depths, num_heads, window_size, dim_mlp)
        self.tablock2 = nn.ModuleList(TABlock(num_tokens) for _ in range(num_tab))
        self.conv2 = nn.Conv2d(embed_dim, half, 1)
        self.swintransformer2 = SwinStage(half, grid, depths, num_heads, window_size, dim_mlp)
        self.decoder = nn.ModuleList(
            DecoderBlock(decoder_dim, decoder_heads, grid=grid) for _ in range(decoder_depth)
        )
        self.conv_decoder = nn.Conv2d(half, decoder_dim, 1)
        # Checkpoint-only (config add_mlp=False).
        self.testmlp = nn.Sequential(
            nn.Linear(decoder_dim, decoder_dim),
            nn.ReLU(),
            nn.Dropout(),
            nn.Linear(decoder_dim, decoder_dim),
        )
        self.embed_mlp = nn.Sequential(
            nn.Linear(enc_dim, hidden),
            nn.ReLU(),
            nn.Dropout(),
            nn.Linear(hidden, num_tokens),
            nn.Sigmoid(),
        )
        self.fc_score = nn.Sequential(
            nn.Linear(head_in, head_in),
            nn.ReLU(),
            nn.Dropout(),
            nn.Linear(head_in, 1),
            nn.ReLU(),
        )
        self.fc_weight = nn.Sequential(
            nn.Linear(head_in, head_in),
            nn.ReLU(),
            nn.Dropout(),
            nn.Linear(head_in, 1),
            nn.Sigmoid(),
        )

    def forward_features(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Image + degradation tokens -> decoder tokens [B,576,256]."""
        t = self.vit(x).transpose(1, 2)  # [B, 3072, 576] channels x tokens
        for blk in self.tablock1:
            t = blk(t)
        t = self.conv1(t.reshape(-1, t.shape[1], self.grid, self.grid))
        t = self.swintransformer1(t)
        t = t.flatten(2)
        for blk in self.tablock2:
            t = blk(t)
        t = self.conv2(t.reshape(-1, t.shape[1], self.grid, self.grid))
        t = self.swintransformer2(t)
        t = self.conv_decoder(t).flatten(2).transpose(1, 2)
        s = style.flatten(1, 2)  # [B, 96, 256], row-major over the 8x12 cells (official)
        for blk in self.decoder:
            t = blk(t, s)
        return t
