"""The Swin stage DSL-FIQA runs twice (widths 768 and 384) on the 24x24 token grid."""

from __future__ import annotations

import torch
from torch import nn

from engines.dslfiqa.vit import Mlp

SWIN_LN_EPS = 1e-5
# The official stage ignores its ``scale`` argument (0.8 in config.conf) and hard-codes this.
SWIN_RESIDUAL_SCALE = 0.13
SWIN_MASK_VALUE = -100.0


def relative_position_index(window: int) -> torch.Tensor:
    """[w*w, w*w] int64: index into the (2w-1)^2 bias table for each token pair of a window."""
    # Always built on the CPU: under a meta-device context the index maths is very slow.
    ar = torch.arange(window, device="cpu")
    coords = torch.stack(torch.meshgrid(ar, ar, indexing="ij"))
    flat = coords.flatten(1)
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """[B,H,W,C] -> [B*nW, w*w, C], windows row-major, tokens row-major inside each."""
    _, h, w, c = x.shape
    x = x.reshape(-1, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: [B*nW, w*w, C] -> [B,H,W,C]."""
    c = windows.shape[-1]
    x = windows.reshape(-1, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def shifted_window_mask(resolution: int, window: int, shift: int) -> torch.Tensor:
    """[nW, w*w, w*w] float: 0 inside one region of the shifted grid, -100 across regions."""
    labels = torch.zeros(1, resolution, resolution, 1, device="cpu")
    bands = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    region = 0
    for rows in bands:
        for cols in bands:
            labels[:, rows, cols, :] = region
            region += 1
    win = window_partition(labels, window).squeeze(-1)
    diff = win.unsqueeze(1) - win.unsqueeze(2)
    return torch.where(diff != 0, SWIN_MASK_VALUE, 0.0).to(torch.float32)


class WindowAttention(nn.Module):
    """Window self-attention with a learned relative position bias (q scaled before q.k)."""

    def __init__(self, dim: int, window: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.window = window
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window - 1) ** 2, num_heads)
        )
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        _, n, c = x.shape
        qkv = self.qkv(x).reshape(-1, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        attn = attn + bias.reshape(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.reshape(-1, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.reshape(-1, self.num_heads, n, n)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(-1, n, c))


class SwinBlock(nn.Module):
    """Pre-norm (shifted-)window attention block; ``shift > 0`` owns the ``attn_mask`` buffer."""

    def __init__(
        self, dim: int, resolution: int, num_heads: int, window: int, shift: int, mlp_dim: int
    ):
        super().__init__()
        self.resolution = resolution
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim, eps=SWIN_LN_EPS)
        self.attn = WindowAttention(dim, window, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=SWIN_LN_EPS)
        self.mlp = Mlp(dim, mlp_dim)
        if shift > 0:
            self.register_buffer("attn_mask", shifted_window_mask(resolution, window, shift))
        else:
            self.attn_mask = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, c = self.resolution, x.shape[-1]
        h = self.norm1(x).reshape(-1, r, r, c)
        if self.shift:
            h = torch.roll(h, shifts=(-self.shift, -self.shift), dims=(1, 2))
        h = window_reverse(
            self.attn(window_partition(h, self.window), self.attn_mask), self.window, r, r
        )
        if self.shift:
            h = torch.roll(h, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + h.reshape(-1, r * r, c)
        return x + self.mlp(self.norm2(x))


class BasicLayer(nn.Module):
    """Unshifted + shifted block, then a 3x3 conv with ReLU on the token grid."""

    def __init__(
        self, dim: int, resolution: int, depth: int, num_heads: int, window: int, mlp_dim: int
    ):
        super().__init__()
        self.resolution = resolution
        self.blocks = nn.ModuleList(
            SwinBlock(dim, resolution, num_heads, window, 0 if i % 2 == 0 else window // 2, mlp_dim)
            for i in range(depth)
        )
        self.conv = nn.Conv2d(dim, dim, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        c, r = x.shape[-1], self.resolution
        x = torch.relu(self.conv(x.transpose(1, 2).reshape(-1, c, r, r)))
        return x.flatten(2).transpose(1, 2)


class SwinStage(nn.Module):
    """[B,D,24,24] -> [B,D,24,24]: layers applied as T <- T + 0.13 * layer(T).

    ``downsample`` is a checkpoint-only conv: the official forward never calls it.
    """

    def __init__(
        self,
        dim: int,
        resolution: int = 24,
        depths: tuple[int, ...] = (2, 2),
        num_heads: tuple[int, ...] = (4, 4),
        window: int = 4,
        mlp_dim: int = 768,
        residual_scale: float = SWIN_RESIDUAL_SCALE,
    ):
        super().__init__()
        self.residual_scale = residual_scale
        self.layers = nn.ModuleList(
            BasicLayer(dim, resolution, d, h, window, mlp_dim)
            for d, h in zip(depths, num_heads, strict=True)
        )
        self.downsample = nn.Conv2d(dim, dim, kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        for layer in self.layers:
            t = self.residual_scale * layer(t) + t
        return t.transpose(1, 2).reshape(-1, c, h, w)
