"""Quality-network (IQA) training with the official recipe (DSL_FIQA.md 9).

Per step: a batch of random crops (with their landmark index vectors and min-max scaled MOS)
goes through the frozen degradation encoder and the quality network; the Charbonnier loss
is minimised with Adam, and the cosine schedule is stepped every iteration. Each epoch ends
with a validation pass (one random crop per image, when a ``val`` split exists); the weights
with the best validation SRCC are written to ``IQA.pt`` (the latest when there is no ``val``
split), next to a copy of the ``DE.pt`` used, so that the output folder loads with
``load_dslfiqa`` (official sizes) or ``load_trained`` (any size).

Resuming: ``last.pt`` holds the weights, optimiser, scheduler, step and torch RNG state. Batch
order is a permutation seeded by (seed, epoch) and every augmentation draws from a generator
seeded by (seed, epoch, sample index), so a resumed run repeats exactly the steps an
uninterrupted run would have taken.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import torch

from engines.dataset import FiqaDataset, normalized_mos
from engines.dslfiqa.checkpoint import CheckpointSource
from engines.dslfiqa.degradation_encoder import DegradationEncoder
from engines.dslfiqa.training.checkpoints import (
    LAST_NAME,
    atomic_save,
    load_de,
    load_into,
    official_state_dict,
    read_training_state,
    save_weights,
)
from engines.dslfiqa.training.config import ModelConfig, QualityTrainConfig
from engines.dslfiqa.training.data import TrainTransform, collate, sample_rng
from engines.metrics import plcc, srcc

CHECKPOINT_FORMAT = "fqm-dslfiqa-quality-train/1"
# Validation crops use their own stream so that adding a val split never changes training.
VAL_STREAM = 1_000_003


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Official loss: mean(sqrt((pred - target)^2 + eps))."""
    return torch.sqrt((pred - target) ** 2 + eps).mean()


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    step: int
    train_loss: float
    val: dict[str, float] | None


def _log_to(stream: TextIO | None) -> Callable[[str], None]:
    def log(msg: str) -> None:
        print(f"[fqm train quality] {msg}", file=stream or sys.stderr, flush=True)

    return log


class QualityTrainer:
    """Trains the quality network of ``model_config`` on ``train_set``.

    Args:
        model_config: sizes (``ModelConfig.official()`` for real training).
        config: the recipe (official defaults).
        train_set / val_set: official-layout splits; their MOS is min-max scaled to [0,1]
            within each split (DSL_FIQA.md §9) to make the training targets.
        out_dir: where ``IQA.pt``, ``DE.pt``, ``model_config.json`` and ``last.pt`` go.
        de: the degradation encoder weights (DE.pt) or module; ``None`` = a randomly
            initialised encoder (only meaningful for tests and smoke runs).
        init_iqa: optional IQA weights to start from (fine-tuning).
        vit_init: optional timm ``vit_base_patch16_384`` state_dict for the ViT (the official
            run starts from the ImageNet augreg in21k->in1k weights).
        log: text stream for progress (stderr by default).

    Example:
        >>> trainer = QualityTrainer(ModelConfig.official(), QualityTrainConfig(),
        ...                          FiqaDataset.from_dir("GFIQA/train"), None,
        ...                          "runs/gfiqa", de="ckpt/DE.pt")  # doctest: +SKIP
        >>> trainer.fit()  # doctest: +SKIP
    """

    def __init__(
        self,
        model_config: ModelConfig,
        config: QualityTrainConfig,
        train_set: FiqaDataset,
        val_set: FiqaDataset | None,
        out_dir: str | Path,
        de: CheckpointSource | DegradationEncoder | None = None,
        init_iqa: CheckpointSource | None = None,
        vit_init: CheckpointSource | None = None,
        log: TextIO | None = None,
    ):
        self.model_config = model_config
        self.config = config
        self.train_set = train_set
        self.val_set = val_set
        self.train_labels = normalized_mos(train_set.mos)
        self.val_labels = normalized_mos(val_set.mos) if val_set is not None else None
        self.out_dir = Path(out_dir)
        self.log = _log_to(log)
        self.device = torch.device(config.device)
        self.steps_per_epoch = len(train_set) // config.batch_size  # drop_last, as official
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"{len(train_set)} training faces are fewer than one batch of "
                f"{config.batch_size}; lower --batch-size"
            )
        torch.manual_seed(config.seed)
        if isinstance(de, DegradationEncoder):
            self.de = de
        elif de is None:
            self.de = model_config.build_de()
        else:
            self.de = load_de(de, model_config)
        # Frozen: no gradients, and eval-mode BatchNorm. (The official script leaves the DE in
        # train mode until the first validation, so its BN statistics drift during epoch 1;
        # that is not reproduced.)
        self.de.to(self.device).eval().requires_grad_(False)
        self.iqa = model_config.build_iqa()
        if init_iqa is not None:
            load_into(self.iqa, init_iqa, "IQA")
        if vit_init is not None:
            load_into(self.iqa.vit, vit_init, "ViT")
        self.iqa.to(self.device)
        self.optimizer = torch.optim.Adam(
            self.iqa.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=config.cosine_t_max, eta_min=config.eta_min
        )
        self.transform = TrainTransform(
            model_config.image_size, model_config.crop_size, config.flip, config.flip_p
        )
        self.step = 0
        self.best_srcc = -math.inf
        self.history: list[EpochReport] = []

    # ------------------------------------------------------------------ data
    @property
    def total_steps(self) -> int:
        total = self.config.epochs * self.steps_per_epoch
        return min(total, self.config.max_steps) if self.config.max_steps is not None else total

    def batch_indices(self, step: int) -> np.ndarray:
        epoch, pos = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.config.seed, epoch]).permutation(len(self.train_set))
        b = self.config.batch_size
        return order[pos * b : (pos + 1) * b]

    def example(
        self, dataset: FiqaDataset, labels: np.ndarray, index: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Face ``index`` of ``dataset`` transformed: crop, landmark vector, normalised label."""
        image, landmarks = dataset.load(index)
        x, vec = self.transform(image, landmarks, rng, dataset[index].name)
        return x, vec, float(labels[index])

    def load_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        epoch = step // self.steps_per_epoch
        items = []
        for i in map(int, self.batch_indices(step)):
            rng = sample_rng(self.config.seed, epoch, i)
            items.append(self.example(self.train_set, self.train_labels, i, rng))
        return collate(items)

    # ------------------------------------------------------------------ steps
    def predict(self, x: torch.Tensor, lm: torch.Tensor) -> torch.Tensor:
        x, lm = x.to(self.device), lm.to(self.device)
        with torch.no_grad():
            style = self.de.forward_features(x)
        return self.iqa(x, style, lm)

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> float:
        """One optimisation step on ``batch``; returns the loss before the update."""
        x, lm, y = batch
        self.iqa.train()
        pred = self.predict(x, lm)
        loss = charbonnier(pred, y.to(self.device), self.config.charbonnier_eps)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()  # every iteration, as official
        self.step += 1
        return float(loss.detach())

    def validate(self, epoch: int) -> dict[str, float]:
        """One random crop per validation face: SRCC, PLCC and MSE on normalised labels."""
        assert self.val_set is not None
        assert self.val_labels is not None
        self.iqa.eval()
        preds, labels = [], []
        for start in range(0, len(self.val_set), self.config.batch_size):
            idx = range(start, min(start + self.config.batch_size, len(self.val_set)))
            items = [
                self.example(
                    self.val_set,
                    self.val_labels,
                    i,
                    sample_rng(self.config.seed + VAL_STREAM, epoch, i),
                )
                for i in idx
            ]
            x, lm, y = collate(items)
            with torch.no_grad():
                preds.append(self.predict(x, lm).float().cpu().numpy())
            labels.append(y.numpy())
        p, t = np.concatenate(preds), np.concatenate(labels)
        # One face, or a diverged model's NaN outputs, has no correlation: NaN, never "best".
        ok = p.size >= 2 and bool(np.all(np.isfinite(p)))
        nan = float("nan")
        return {
            "srcc": srcc(p, t) if ok else nan,
            "plcc": plcc(p, t) if ok else nan,
            "mse": float(np.mean((p - t) ** 2)),
        }

    # ------------------------------------------------------------------ checkpoints
    def save_last(self) -> Path:
        state = {
            "format": CHECKPOINT_FORMAT,
            "iqa": official_state_dict(self.iqa),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "best_srcc": self.best_srcc,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "model_config": asdict(self.model_config),
            "train_config": asdict(self.config),
        }
        path = self.out_dir / LAST_NAME
        atomic_save(state, path)
        return path

    def resume(self, path: str | Path | None = None) -> bool:
        """Load ``last.pt`` (default: the one in ``out_dir``); False when there is none."""
        path = Path(path) if path is not None else self.out_dir / LAST_NAME
        state = read_training_state(path, CHECKPOINT_FORMAT, "quality", self.model_config)
        if state is None:
            return False
        saved = state["train_config"]
        for key in ("seed", "batch_size"):
            if saved[key] != getattr(self.config, key):
                raise ValueError(
                    f"{path} was trained with {key}={saved[key]}, now {getattr(self.config, key)}"
                    "; resuming with a different value would not continue the same run"
                )
        load_into(self.iqa, state["iqa"], "IQA")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.best_srcc = float(state["best_srcc"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.log(f"resumed from {path} at step {self.step}")
        return True

    def save_weights(self) -> Path:
        save_weights(self.de, self.out_dir / "DE.pt", self.model_config)
        return save_weights(self.iqa, self.out_dir / "IQA.pt", self.model_config)

    # ------------------------------------------------------------------ loop
    def fit(self) -> list[EpochReport]:
        """Train until ``epochs`` (or ``max_steps``); returns one report per finished epoch."""
        cfg = self.config
        total = self.total_steps
        self.log(
            f"{len(self.train_set)} faces, {self.steps_per_epoch} steps/epoch, "
            f"{total - self.step} steps to go (model {self.model_config.name}, "
            f"device {self.device})"
        )
        losses: list[float] = []
        t0, s0 = time.perf_counter(), self.step
        while self.step < total:
            loss = self.train_step(self.load_batch(self.step))
            losses.append(loss)
            if cfg.log_every and self.step % cfg.log_every == 0:
                rate = (self.step - s0) / max(time.perf_counter() - t0, 1e-9)
                self.log(
                    f"epoch {(self.step - 1) // self.steps_per_epoch + 1}/{cfg.epochs} "
                    f"step {self.step}/{total} loss {loss:.4f} "
                    f"lr {self.scheduler.get_last_lr()[0]:.3g} {rate:.2f} steps/s"
                )
            if self.step % self.steps_per_epoch == 0:
                self._end_epoch(self.step // self.steps_per_epoch - 1, losses)
                losses = []
            elif cfg.save_every and self.step % cfg.save_every == 0:
                self.save_last()
        if losses:  # stopped by max_steps inside an epoch
            self.save_last()
            if not (self.out_dir / "IQA.pt").is_file():
                self.save_weights()
        return self.history

    def _end_epoch(self, epoch: int, losses: list[float]) -> None:
        val = self.validate(epoch) if self.val_set is not None and len(self.val_set) else None
        mean_loss = float(np.mean(losses)) if losses else float("nan")
        report = EpochReport(epoch + 1, self.step, mean_loss, val)
        self.history.append(report)
        if val is None:
            self.save_weights()
            self.log(f"epoch {epoch + 1} done, train loss {mean_loss:.4f}; wrote IQA.pt")
        else:
            # A NaN SRCC (constant predictions) never counts as better, but the first
            # epoch always writes IQA.pt so that the folder is loadable.
            better = val["srcc"] > self.best_srcc or not (self.out_dir / "IQA.pt").is_file()
            if better:
                self.best_srcc = val["srcc"] if not math.isnan(val["srcc"]) else self.best_srcc
                self.save_weights()
            self.log(
                f"epoch {epoch + 1} done, train loss {mean_loss:.4f}, val SRCC {val['srcc']:.4f} "
                f"PLCC {val['plcc']:.4f} MSE {val['mse']:.4f}"
                + ("; best so far, wrote IQA.pt" if better else "")
            )
        self.save_last()
