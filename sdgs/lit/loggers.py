"""Loggers whose folder defaults to the run folder.

``save_dir=None`` (the default in ``lightning_configs/base.yaml``) is filled in by :class:`~sdgs.cli.lightning.SDGSCLI`
with ``trainer.default_root_dir``, so one run folder holds a run's logs, W&B files and checkpoints.
W&B logs offline unless the environment asks for online logging.
"""

from __future__ import annotations

import os

from lightning.pytorch.loggers import CSVLogger, WandbLogger

__all__ = ["RunCSVLogger", "SDGSWandbLogger", "wandb_offline_default"]


def wandb_offline_default() -> bool:
    """Offline unless the environment asks for online logging (a W&B sweep agent sets WANDB_SWEEP_ID)."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "disabled", "dryrun"):
        return True
    return not (mode == "online" or os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_SWEEP_ID"))


def _run_folder(save_dir: str | None) -> str:
    # Outside the CLI (notebooks, tests) a None save_dir means the current folder, as Lightning's own default.
    return "." if save_dir is None else str(save_dir)


class RunCSVLogger(CSVLogger):
    """:class:`lightning.pytorch.loggers.CSVLogger` writing ``<run>/logs/version_N/metrics.csv``.

    Each invocation (fit, a resume, a test) gets its own ``version_N``, so nothing is overwritten.
    """

    def __init__(self, save_dir: str | None = None, name: str = "logs", **kwargs) -> None:
        super().__init__(save_dir=_run_folder(save_dir), name=name, **kwargs)


class SDGSWandbLogger(WandbLogger):
    """:class:`lightning.pytorch.loggers.WandbLogger` writing under ``<run>/wandb``, offline by default.

    Args:
        offline: None = :func:`wandb_offline_default`; True/False force it.
        save_dir: None = the run folder.
        **kwargs: WandbLogger arguments (``project``, ``name``, ...).
    """

    def __init__(
        self, offline: bool | None = None, project: str = "sdgs", save_dir: str | None = None, **kwargs
    ) -> None:
        save_dir = _run_folder(save_dir)
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
