"""Callbacks: preview grids (PNG in the run folder + W&B) and the per-run config saver."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.cli import SaveConfigCallback

from sdgs.io import atomic_path

__all__ = ["RenderPreviewCallback", "RunDirSaveConfig", "run_dir"]


def run_dir(trainer: L.Trainer) -> Path:
    """The run folder: ``trainer.default_root_dir`` (the CLI derives loggers' and checkpoints' folders from it)."""
    return Path(trainer.default_root_dir)


class RunDirSaveConfig(SaveConfigCallback):
    """Save the resolved config into the run folder: ``config.yaml`` for ``fit``, ``config_<stage>.yaml``
    for ``validate``/``test``/``predict`` (so testing a run never overwrites how it was trained).

    Lightning's default writes ``config.yaml`` into ``logger.save_dir`` and aborts when it exists; here a
    resumed fit refreshes it, and a W&B run also gets the config as its hyper-parameters.
    """

    def __init__(self, parser, config, config_filename: str = "config.yaml", **kwargs) -> None:
        kwargs.pop("save_to_log_dir", None)
        kwargs["overwrite"] = True
        super().__init__(parser, config, config_filename, save_to_log_dir=False, **kwargs)

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        folder = run_dir(trainer)
        folder.mkdir(parents=True, exist_ok=True)
        stage = getattr(stage, "value", stage)  # Lightning passes a TrainerFn enum
        name = self.config_filename if stage == "fit" else f"config_{stage}.yaml"
        self.parser.save(self.config, str(folder / name), skip_none=False, overwrite=True)
        for logger in trainer.loggers:
            if type(logger).__name__.endswith("WandbLogger"):
                logger.experiment.config.update(self.config.as_dict(), allow_val_change=True)


class RenderPreviewCallback(L.Callback):
    """At each validation (and every N training steps) a grid of: defocused input, re-rendered defocus
    (splatting radiance at the predicted depth), predicted defocus map |CoC|, z0, refined depth, GT depth
    and |error|.

    Written as ``<run>/previews/{val,train}_step_XXXXXXX.png`` and logged to W&B when a WandbLogger is attached.

    Args:
        max_images: samples (rows) per grid.
        every_n_val: write a grid every N-th validation.
        every_n_steps: also write a grid of the current training batch every N optimizer steps (0 = never).
    """

    def __init__(self, max_images: int = 4, every_n_val: int = 1, every_n_steps: int = 0) -> None:
        self.max_images = max_images
        self.every_n_val = every_n_val
        self.every_n_steps = every_n_steps
        self._count = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if not self.every_n_steps or step % self.every_n_steps or not trainer.is_global_zero:
            return
        n = min(self.max_images, batch["stack"].shape[0])
        k = batch["stack"].shape[1] // 2
        radiance = batch["radiance"][:n] if "radiance" in batch else None
        camera = {key: v[:n] for key, v in batch["camera"].items()}
        preview = pl_module.preview(
            batch["stack"][:n, k], batch["focus_distance"][:n, k], camera, batch["depth"][:n], radiance
        )
        self._write(trainer, preview, f"train_step_{step:07d}.png")

    def _write(self, trainer: L.Trainer, preview: dict, name: str) -> None:
        path = run_dir(trainer) / "previews" / name
        save_preview_grid(preview, path, self.max_images)
        for logger in trainer.loggers:
            if type(logger).__name__.endswith("WandbLogger"):
                logger.log_image(key="previews", images=[str(path)], step=trainer.global_step)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        preview = getattr(pl_module, "last_preview", None)
        self._count += 1
        if not preview or trainer.sanity_checking or not trainer.is_global_zero or self._count % self.every_n_val:
            return
        self._write(trainer, preview, f"val_step_{trainer.global_step:07d}.png")


def save_preview_grid(preview: dict, path: Path, max_images: int = 4) -> Path:
    """Render the preview dict of :class:`~sdgs.lit.module.SDGSModule` to a PNG grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(max_images, preview["image"].shape[0])
    cols = [("input (defocused)", preview["image"], "rgb")]
    if "rendered" in preview:
        cols.append(("re-rendered", preview["rendered"], "rgb"))
    gt = preview["gt"]
    vmax = float(gt[gt > 0].max()) if (gt > 0).any() else float(preview["depth"].max())
    cols += [
        ("|CoC| (px)", preview["defocus"], "coc"),
        ("z0 (m)", preview["z0"], "depth"),
        ("refined depth (m)", preview["depth"], "depth"),
        ("GT depth (m)", gt, "depth"),
        ("|error| (m)", (preview["depth"] - gt).abs() * (gt > 0), "err"),
    ]
    fig, axes = plt.subplots(n, len(cols), figsize=(2.2 * len(cols), 2.2 * n), squeeze=False)
    for r in range(n):
        for c, (title, tensor, kind) in enumerate(cols):
            ax = axes[r, c]
            img = tensor[r].detach().float().cpu()
            if kind == "rgb":
                ax.imshow(img.clamp(0, 1).permute(1, 2, 0).numpy())
            else:
                cmap = {"depth": "magma_r", "coc": "viridis", "err": "inferno"}[kind]
                vmin, vm = (0.0, vmax) if kind == "depth" else (None, None)
                im = ax.imshow(img[0].numpy(), cmap=cmap, vmin=vmin, vmax=vm)
                fig.colorbar(im, ax=ax, fraction=0.046)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=72)
    plt.close(fig)
    return path
