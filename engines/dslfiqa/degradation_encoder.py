"""Degradation encoder (DE.pt): a small conv net whose pooled map conditions the decoder."""

from __future__ import annotations

import torch
from torch import nn

# (in, out, stride) of the six conv-BN-LeakyReLU units (checkpoint indices E.0 ... E.17) and
# the pooled grid: torch-free, in constants.
from engines.dslfiqa.constants import DE_CONVS as DE_CONVS
from engines.dslfiqa.constants import DE_POOL as DE_POOL

DE_LEAKY_SLOPE = 0.1
DE_BN_EPS = 1e-5
DE_DIM = 256


class DegradationEncoder(nn.Module):
    """Crop [B,3,384,384] -> degradation tokens ``fea`` [B,8,12,256] (channels-last).

    ``mlp`` only produced the contrastive-training output; it is kept for strict loading and
    run only by :meth:`forward` (official two outputs), never by :meth:`forward_features`.
    """

    def __init__(
        self,
        convs: tuple[tuple[int, int, int], ...] = DE_CONVS,
        pool: tuple[int, int] = DE_POOL,
    ) -> None:
        """Defaults are the official architecture; smaller ``convs``/``pool`` only for tests.

        Args:
            convs: ``(in, out, stride)`` per conv-BN-LeakyReLU unit; the last ``out`` is the
                token width (256 official).
            pool: adaptive-pool grid (rows, cols) = the degradation token grid (8x12 official).
        """
        super().__init__()
        dim = convs[-1][1]
        self.dim = dim
        layers: list[nn.Module] = []
        for cin, cout, stride in convs:
            layers += [
                nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1),
                nn.BatchNorm2d(cout, eps=DE_BN_EPS),
                nn.LeakyReLU(DE_LEAKY_SLOPE),
            ]
        layers.append(nn.AdaptiveAvgPool2d(pool))
        self.E = nn.Sequential(*layers)
        self.mlp = nn.Sequential(
            nn.Linear(dim, dim), nn.LeakyReLU(DE_LEAKY_SLOPE), nn.Linear(dim, dim)
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The only output the score uses: pooled map, channels-last [B,8,12,256]."""
        return self.E(x).permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Official outputs ``(fea, mlp(fea))``."""
        fea = self.forward_features(x)
        return fea, self.mlp(fea)
