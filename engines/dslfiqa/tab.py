"""Transposed-attention block (TAB): attention between channels, mixing along tokens."""

from __future__ import annotations

import torch
from torch import nn


class TABlock(nn.Module):
    """Channel attention over X [B, C, N] with Linear(N->N) q/k/v maps on the token axis.

    The official block transposes A.V to [B, N, C] and then re-reads that memory as
    [B, C, N] (a reshape, not a transpose). The checkpoints were trained with it, so it is
    reproduced here on purpose.
    """

    def __init__(self, num_tokens: int):
        super().__init__()
        self.c_q = nn.Linear(num_tokens, num_tokens)
        self.c_k = nn.Linear(num_tokens, num_tokens)
        self.c_v = nn.Linear(num_tokens, num_tokens)
        self.norm_fact = num_tokens**-0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, c, n = x.shape
        q, k, v = self.c_q(x), self.c_k(x), self.c_v(x)
        attn = ((q @ k.transpose(-2, -1)) * self.norm_fact).softmax(dim=-1)
        y = (attn @ v).transpose(1, 2).reshape(-1, c, n)  # the official memory re-read
        return y + x
