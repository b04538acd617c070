"""Cross-attention decoder: image tokens attend with queries taken from degradation tokens."""

from __future__ import annotations

import torch
from torch import nn

DECODER_LN_EPS = 1e-6


class CrossAttention(nn.Module):
    """Queries from the 96 degradation tokens, keys/values from the 576 image tokens.

    The official code stretches q from 96 to 576 rows with nearest interpolation, i.e. row n
    uses degradation token n // 6. Equal query rows give equal output rows, so this computes
    the 96 distinct rows and repeats them: bit-compatible and 6x less attention work.
    ``task_query`` is a checkpoint-only parameter (unused by the official forward).
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.task_query = nn.Parameter(torch.zeros(1, 1, dim))
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        _, n, c = x.shape
        m = style.shape[1]
        hd = c // self.num_heads
        q = self.q(style).reshape(-1, m, self.num_heads, hd).transpose(1, 2)
        k, v = self.kv(x).reshape(-1, n, 2, self.num_heads, hd).permute(2, 0, 3, 1, 4).unbind(0)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        out = self.proj((attn @ v).transpose(1, 2).reshape(-1, m, c))
        # Row n of the official stretched query is degradation token n // (n / m).
        return out.unsqueeze(2).expand(-1, m, n // m, c).reshape(-1, n, c)


class DWConv(nn.Module):
    """Depth-wise 3x3 conv over tokens viewed as a square grid."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor, size: int) -> torch.Tensor:
        c = x.shape[-1]
        x = self.dwconv(x.transpose(1, 2).reshape(-1, c, size, size))
        return x.flatten(2).transpose(1, 2)


class MixFFN(nn.Module):
    """Linear, depth-wise conv, exact GELU, Linear."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, size: int) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x), size)))


class DecoderBlock(nn.Module):
    """X <- X + Attn(LN1(X), S); X <- X + MixFFN(LN2(X))."""

    def __init__(self, dim: int = 256, num_heads: int = 8, mlp_ratio: int = 4, grid: int = 24):
        super().__init__()
        self.grid = grid
        self.norm1 = nn.LayerNorm(dim, eps=DECODER_LN_EPS)
        self.attn = CrossAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=DECODER_LN_EPS)
        self.mlp = MixFFN(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), style)
        return x + self.mlp(self.norm2(x), self.grid)
