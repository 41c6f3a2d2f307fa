"""W&B logger defaulting to offline: online only when WANDB_API_KEY is set or WANDB_MODE=online."""

from __future__ import annotations

import os

from lightning.pytorch.loggers import WandbLogger

__all__ = ["SDGSWandbLogger", "wandb_offline_default"]


def wandb_offline_default() -> bool:
    """Offline unless the environment asks for online logging (a W&B sweep agent sets WANDB_SWEEP_ID)."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "disabled", "dryrun"):
        return True
    return not (mode == "online" or os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_SWEEP_ID"))


class SDGSWandbLogger(WandbLogger):
    """:class:`lightning.pytorch.loggers.WandbLogger` with ``offline`` defaulting to the environment.

    Args:
        offline: None = :func:`wandb_offline_default`; True/False force it.
        **kwargs: WandbLogger arguments (``project``, ``save_dir``, ``name``, ...).
    """

    def __init__(self, offline: bool | None = None, project: str = "sdgs", save_dir: str = "runs", **kwargs) -> None:
        super().__init__(
            offline=wandb_offline_default() if offline is None else offline,
            project=project,
            save_dir=save_dir,
            **kwargs,
        )

    @property
    def experiment(self):  # noqa: ANN201 - wandb's Run
        """The W&B run; ``save_dir`` is created here, on first use, so a run that fails earlier leaves no folder."""
        os.makedirs(self.save_dir, exist_ok=True)  # wandb.init needs it to exist
        return super().experiment
