"""Cross-set parts of the degradation encoder's contrastive stage (docs/training.md).

The DSL-FIQA paper aligns its two sets -- synthetic degradations of high-quality faces and real
degraded faces -- with a *soft proximity mapping* and a bidirectional contrastive loss. Its
exact formulation is not in the official repository (DSL_FIQA.md 9), so the pieces here are our
reading of that idea, kept small and separately testable:

* :func:`soft_proximity_targets` / :func:`soft_proximity_loss` -- each real sample is softly
  assigned to the synthetic degradations of the step it resembles (temperature-scaled softmax
  of cosine similarities, no gradient through the targets), and the other view of the same
  real sample is trained to reproduce that assignment with sharper targets than predictions,
  so real degradations are pulled toward the synthetic ones they are closest to (and those,
  through the prediction logits, toward them).
* :func:`false_negative_mask` -- keys that come from the same degradation source as a query
  (same synthetic recipe, same real clip) are not used as its negatives.
* :func:`ema_update` -- the optional momentum (key) encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

SYNTHETIC_PREFIX = "syn:"
REAL_PREFIX = "real:"
CLEAN_PREFIX = "clean:"


@dataclass(frozen=True)
class DualSetConfig:
    """Settings of the cross-set terms; every default is ours unless marked otherwise.

    Attributes:
        proximity_weight: weight of the soft-proximity term added to the InfoNCE loss; 0 turns
            it off. The paper uses the mapping (so it is on by default); its weight is not
            published, 1.0 is our choice.
        proximity_temperature: temperature of the (stop-gradient) soft targets, real ->
            synthetic. Lower is sharper (closer to a hard nearest-synthetic assignment). 0.1
            is our choice: half the InfoNCE temperature used for the predictions, so the
            targets are sharper than the predictions and the term pulls instead of only
            keeping two views consistent.
        momentum: EMA coefficient ``m`` of a separate key encoder, updated after every step
            as ``key = m * key + (1 - m) * query``; 0 disables it (keys, negatives and queue
            entries then come from the trained encoder itself, as in the official loss
            module). The paper's use of one is not documented in the sources we could read;
            off by default, 0.999 (MoCo's value) is the usual choice when on.
        mask_false_negatives: drop, from each query's negatives, the keys of other pairs built
            from the same degradation source (identical synthetic recipe, same real clip),
            in the batch and in the queue. Our choice (on).
    """

    proximity_weight: float = 1.0
    proximity_temperature: float = 0.1
    momentum: float = 0.0
    mask_false_negatives: bool = True

    def validate(self) -> None:
        if self.proximity_weight < 0:
            raise ValueError(f"proximity_weight must be >= 0, not {self.proximity_weight}")
        if self.proximity_temperature <= 0:
            raise ValueError(f"proximity_temperature must be > 0, not {self.proximity_temperature}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), not {self.momentum}")


# ---------------------------------------------------------------------------- soft proximity
def soft_proximity_targets(
    real: torch.Tensor, synthetic: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Soft assignment of each real embedding to the synthetic ones [R, S]: rows are
    ``softmax(real @ synthetic.T / temperature)``, detached (no gradient flows into targets).
    Inputs are L2-normalised [*, D]."""
    with torch.no_grad():
        return F.softmax(real.detach() @ synthetic.detach().T / temperature, dim=1)


def soft_proximity_loss(
    real_q: torch.Tensor,
    real_k: torch.Tensor,
    synthetic: torch.Tensor,
    target_temperature: float,
    temperature: float,
) -> torch.Tensor:
    """Cross-entropy between the soft proximity of one view of a real sample (the target,
    sharpened at ``target_temperature``, stop-gradient) and the distribution of the other view
    over the same synthetic embeddings (at ``temperature``), in both directions.

    ``real_q[i]`` and ``real_k[i]`` are two views of real sample i; ``synthetic`` [S, D] are
    the step's synthetic embeddings. Returns 0 when either set is empty.
    """
    if not len(real_q) or not len(synthetic):
        return real_q.new_zeros(())
    loss = real_q.new_zeros(())
    for pred, view in ((real_q, real_k), (real_k, real_q)):
        target = soft_proximity_targets(view, synthetic, target_temperature)
        log_p = F.log_softmax(pred @ synthetic.T / temperature, dim=1)
        loss = loss - (target * log_p).sum(1).mean()
    return loss / 2


# ---------------------------------------------------------------------------- false negatives
def false_negative_mask(
    groups: Sequence[str], extra_groups: Sequence[str], device: torch.device | None = None
) -> torch.Tensor:
    """Boolean [N, N + E] mask of the negatives to drop from InfoNCE's logits.

    Column j < N is pair j's key (or query, for the reverse direction), columns >= N are the
    extra keys (clean twins, queue) with groups ``extra_groups``. Entry (i, j) is True when
    column j comes from the same degradation source as pair i and is not its own positive
    (j != i). Groups are strings such as ``"syn:<recipe>"`` or ``"real:<clip>"``.
    """
    all_groups = list(groups) + list(extra_groups)
    ids: dict[str, int] = {}
    codes = torch.tensor([ids.setdefault(g, len(ids)) for g in all_groups], dtype=torch.long)
    n = len(groups)
    mask = codes[:n, None] == codes[None, :]
    mask[torch.arange(n), torch.arange(n)] = False
    return mask.to(device) if device is not None else mask


# ---------------------------------------------------------------------------- momentum encoder
@torch.no_grad()
def ema_update(key: torch.nn.Module, query: torch.nn.Module, momentum: float) -> None:
    """``key = momentum * key + (1 - momentum) * query`` for every parameter; buffers
    (BatchNorm statistics) are the key encoder's own, updated by its forward passes."""
    for pk, pq in zip(key.parameters(), query.parameters(), strict=True):
        pk.mul_(momentum).add_(pq.detach(), alpha=1 - momentum)
