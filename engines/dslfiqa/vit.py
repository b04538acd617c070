"""ViT-B/16 at 384 as DSL-FIQA uses it: a feature extractor over blocks 6-9.

Parameter names and shapes are those of timm's ``vit_base_patch16_384`` (prefix ``vit.`` in
IQA.pt), so official checkpoints load strictly. Attention is computed explicitly (no fused
SDPA) because that is what the official code does and it keeps the parity bit-close; it is
also export-safe.
"""

from __future__ import annotations

import torch
from torch import nn

# Blocks whose outputs DSL-FIQA concatenates (0-based); torch-free, in constants.
from engines.dslfiqa.constants import FEATURE_BLOCKS as FEATURE_BLOCKS

VIT_EMBED_DIM = 768
VIT_DEPTH = 12
VIT_HEADS = 12
VIT_MLP_RATIO = 4
VIT_PATCH = 16
VIT_IMG_SIZE = 384
VIT_LN_EPS = 1e-6


class PatchEmbed(nn.Module):
    """Non-overlapping 16x16 patches to tokens, row-major over the 24x24 grid."""

    def __init__(self, patch: int = VIT_PATCH, in_chans: int = 3, dim: int = VIT_EMBED_DIM):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with packed qkv (q, k, v thirds; heads contiguous)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, n, c = x.shape
        qkv = self.qkv(x).reshape(-1, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(-1, n, c))


class Mlp(nn.Module):
    """Linear, exact GELU, Linear."""

    def __init__(self, dim: int, hidden: int, out: int | None = None):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out or dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int = VIT_MLP_RATIO):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=VIT_LN_EPS)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=VIT_LN_EPS)
        self.mlp = Mlp(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """ViT-B/16-384 whose ``forward_features`` returns the concatenated hooked block outputs.

    Blocks after the last feature block, ``norm`` and ``head`` exist only so that official
    checkpoints load strictly; they are never run (they cannot influence the score).
    """

    def __init__(
        self,
        img_size: int = VIT_IMG_SIZE,
        patch: int = VIT_PATCH,
        dim: int = VIT_EMBED_DIM,
        depth: int = VIT_DEPTH,
        num_heads: int = VIT_HEADS,
        num_classes: int = 1000,
        feature_blocks: tuple[int, ...] = FEATURE_BLOCKS,
    ):
        super().__init__()
        num_patches = (img_size // patch) ** 2
        self.feature_blocks = feature_blocks
        self.patch_embed = PatchEmbed(patch, 3, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, dim))
        self.blocks = nn.ModuleList(Block(dim, num_heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=VIT_LN_EPS)
        self.head = nn.Linear(dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B,3,384,384] -> [B,576,768*len(feature_blocks)], class token dropped."""
        x = self.patch_embed(x)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), dim=1) + self.pos_embed
        feats = []
        for i, blk in enumerate(self.blocks[: max(self.feature_blocks) + 1]):
            x = blk(x)
            if i in self.feature_blocks:
                feats.append(x[:, 1:])
        return torch.cat(feats, dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)
