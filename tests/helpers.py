"""Test-only callbacks (importable by the CLI from a subprocess started in the repository root)."""

from __future__ import annotations

import os

import lightning as L
import torch


class NaNGroundTruth(L.Callback):
    """Replace the ground-truth depth of every training batch by NaN (proves it is never read)."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        batch["depth"] = torch.full_like(batch["depth"], float("nan"))


class NaNInputAt(L.Callback):
    """Poison the images of the batch at ``step``: the loss becomes NaN there."""

    def __init__(self, step: int = 2) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            batch["stack"] = torch.full_like(batch["stack"], float("nan"))


class KillAfterStep(L.Callback):
    """Kill the process (no clean shutdown, like a pre-empted job) when step ``step`` is about to start.

    Use a step right after an epoch end, where ModelCheckpoint has just written ``last.ckpt``.
    """

    def __init__(self, step: int = 4) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            os._exit(17)


class LossRecorder(L.Callback):
    """Record train/loss after every step."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))
