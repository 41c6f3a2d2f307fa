"""The shared Gaussian-splatting renderer callback: initial depth, CoC targets and confidence per batch.

Attached to any sdgs LightningModule, :class:`GaussianSplattingStage` adds to every training and
validation batch (never to test batches: testing sees one defocused image)::

    initial_depth  (B, 1, H, W) m        z_gs of the splatting stage
    coc_targets    (B, S, 1, H, W) px    signed CoC of z_gs at each image's focus distance
    confidence     (B, 1, H, W) [0, 1]
    radiance       (B, 3, H, W)          fitted sharp colours

Fits are looked up in a disk cache keyed by (dataset identity, split, sample index, camera, fitting
config); missing ones are fitted on the full, un-augmented sample (batched) and cached, then cut to the
batch's crop/flip. It also holds the :class:`~sdgs.render.DefocusRenderer` that modules use for their
rendered-loss terms, so one renderer instance serves every stage.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import typing
from collections.abc import Iterable, Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import default_collate

from sdgs.batch import apply_crop
from sdgs.render import DefocusRenderer
from sdgs.splatting.cache import SplatCache
from sdgs.splatting.fit import SplatFit, SplatFitConfig, fit_gaussians

__all__ = ["GaussianSplattingStage", "fit_and_cache", "fit_batch"]

log = logging.getLogger(__name__)

BATCH_FIELDS = {
    "initial_depth": "depth",
    "coc_targets": "coc_targets",
    "confidence": "confidence",
    "radiance": "radiance",
}


def _groups(items: list[dict[str, Tensor]]) -> Iterable[list[int]]:
    """Positions of items that can share a batch (same stack shape, same images fitted)."""
    by_shape: dict[tuple, list[int]] = {}
    for j, item in enumerate(items):
        fitted = tuple(item["fit_images"].tolist()) if "fit_images" in item else None
        by_shape.setdefault((tuple(item["stack"].shape), fitted), []).append(j)
    return by_shape.values()


def fit_batch(batch: dict[str, Any], config: SplatFitConfig, device: torch.device | str = "cpu") -> SplatFit:
    """:func:`fit_gaussians` of a collated batch of full samples (one ``fit_images`` for all: :func:`_groups`)."""
    fitted = batch.get("fit_images")
    return fit_gaussians(
        batch["stack"].to(device), batch["focus_distance"].to(device),
        {k: v.to(device) for k, v in batch["camera"].items()}, config=config,
        fit_images=None if fitted is None else fitted[0],
    )  # fmt: skip


def fit_and_cache(
    dataset,
    indices: Sequence[int],
    cache: SplatCache,
    config: SplatFitConfig,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    on_done=None,
) -> dict[int, dict[str, Tensor]]:
    """Fit the full, un-augmented samples ``indices`` of ``dataset`` in batches and cache each result.

    Returns the fields per index (CPU). ``on_done(n)`` is called after each batch (progress bars).
    """
    out: dict[int, dict[str, Tensor]] = {}
    for start in range(0, len(indices), batch_size):
        chunk = list(indices[start : start + batch_size])
        items = [dataset.load(i) for i in chunk]
        for group in _groups(items):
            fit = fit_batch(default_collate([items[j] for j in group]), config, device)
            for row, j in enumerate(group):
                fields = {k: v[row].detach().cpu() for k, v in fit.to_dict().items()}
                cache.save(chunk[j], fields)
                out[chunk[j]] = fields
        if on_done is not None:
            on_done(len(chunk))
    return out


class GaussianSplattingStage(L.Callback):
    """Shared Gaussian-splatting stage (module docstring).

    Every :class:`SplatFitConfig` field is also a keyword argument (``splat.<field>`` in the configs, with the
    field's default and help; the signature below is derived from the dataclass), besides:

    Args:
        cache_dir: where fits are cached (shared between runs and DDP ranks).
        render_layers: depth layers of the shared renderer used by the modules' losses.
        fit_batch_size: scenes fitted together when entries are missing.
        keep_on_device: hold every fit in memory on the batch's device after its first use, so each cache
            entry is read from disk and copied to the GPU once per run instead of every batch (a blocking
            ``torch.load`` + host-to-device copy per sample and step that left the GPU idle). Costs
            ``(S + 5) H W`` floats per training sample on the device (FoD500: 2.9 MB, 1.2 GB for 400 scenes);
            False reads the disk cache every batch (for datasets that do not fit).
    """

    def __init__(
        self,
        cache_dir: str = "cache/splat",
        render_layers: int = 8,
        fit_batch_size: int = 8,
        keep_on_device: bool = True,
        **fit_settings: Any,
    ) -> None:
        super().__init__()
        self.cache_dir = cache_dir
        self.config = SplatFitConfig(**fit_settings)
        self.renderer = DefocusRenderer(
            backend=self.config.backend, num_layers=render_layers, sigma_per_coc=self.config.sigma_per_coc
        )
        self.fit_batch_size = fit_batch_size
        self.keep_on_device = keep_on_device
        # (split, device) -> sample index -> fields on that device; entries never change within a run (the
        # cache key holds the fitting settings), so a resident copy cannot go stale
        self._resident: dict[tuple[str, str], dict[int, dict[str, Tensor]]] = {}
        self._datamodule = None
        self._caches: dict[str, SplatCache] = {}
        self.fitted = 0  # samples fitted by this process (the rest came from the cache)
        self.active = True

    # ------------------------------------------------------------------ wiring
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # A module trained on ground truth (the supervised upper bound) reads no splatting fields: stay idle
        # rather than fit every scene for nothing.
        self.active = bool(getattr(pl_module, "needs_splatting", True))
        if self.active:
            self.bind(trainer.datamodule)
        if hasattr(pl_module, "attach_renderer"):
            pl_module.attach_renderer(self.renderer)

    def bind(self, datamodule) -> None:
        """Use ``datamodule`` (needs ``dataset(split)``, ``identity`` and ``camera``)."""
        if datamodule is None or not hasattr(datamodule, "dataset"):
            raise RuntimeError(
                "GaussianSplattingStage needs an sdgs DataModule (datamodules.*DataModule) to look up the full "
                "samples behind each batch; pass one with --data"
            )
        self._datamodule = datamodule
        self._caches = {}
        self._resident = {}

    def cache(self, split: str) -> SplatCache:
        if split not in self._caches:
            dm = self._datamodule
            self._caches[split] = SplatCache(
                self.cache_dir, f"{dm.identity}:{split}", dm.camera.cache_key(), self.config
            )
        return self._caches[split]

    # ------------------------------------------------------------------ per-batch
    def fields_for(self, split: str, indices: Sequence[int], device: torch.device | str = "cpu") -> dict[int, dict]:
        """Fits of the full samples ``indices`` of ``split``: cached, or fitted now and cached."""
        cache = self.cache(split)
        found = {i: cache.load(i) for i in indices}
        missing = [i for i, v in found.items() if v is None]
        if missing:
            fitted = fit_and_cache(
                self._datamodule.dataset(split), missing, cache, self.config, self.fit_batch_size, device
            )
            self.fitted += len(fitted)
            found.update(fitted)
        return found

    def resident_fields(self, split: str, indices: Sequence[int], device: torch.device) -> dict[int, dict]:
        """:meth:`fields_for` through the in-memory copy on ``device`` (``keep_on_device``)."""
        store = self._resident.setdefault((split, str(device)), {})
        missing = [i for i in dict.fromkeys(indices) if i not in store]
        if missing:
            for i, fields in self.fields_for(split, missing, device).items():
                store[i] = {k: v.to(device, non_blocking=True) for k, v in fields.items()}
        return {i: store[i] for i in indices}

    def attach(self, batch: dict[str, Any], split: str) -> dict[str, Any]:
        """Add ``initial_depth``, ``coc_targets``, ``confidence`` and ``radiance`` to ``batch`` in place."""
        device = batch["stack"].device
        # one device-to-host copy each (the batch is on the GPU by now), not one sync per element
        indices = [int(i) for i in batch["index"].tolist()]
        crops = torch.as_tensor(batch["crop"]).tolist()
        if self.keep_on_device:
            fields = self.resident_fields(split, indices, device)
        else:
            fields = self.fields_for(split, indices, device)
        for key, name in BATCH_FIELDS.items():
            views = [apply_crop(fields[i][name], crop) for i, crop in zip(indices, crops)]
            batch[key] = torch.stack(views).to(device=device, dtype=batch["stack"].dtype)
        if "gain" in batch:  # photometric augmentation: the radiance in the colours of the augmented stack
            batch["radiance"] = batch["radiance"] * batch["gain"].to(batch["radiance"]).view(-1, 3, 1, 1)
        return batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.active:
            self.attach(batch, "train")

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx: int = 0) -> None:
        if self.active:
            self.attach(batch, "val")

    def state_dict(self) -> dict[str, Any]:
        return {"config": self.config.key()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """On resume: warn when the fitting settings differ from the ones the checkpoint trained with (the
        networks would continue against another teacher; the cache keeps both sets of fits apart)."""
        saved = state_dict.get("config")
        if saved is not None and saved != self.config.key():
            log.warning(
                "resuming with splatting-stage settings %s, but the checkpoint trained with %s: the targets "
                "change mid-run (set the `splat` options of the original run to continue it unchanged)",
                self.config.key(),
                saved,
            )


def _derive_arguments_from_the_fit_config(cls: type) -> None:
    """Give ``cls.__init__`` the signature ``(own arguments, *, <every SplatFitConfig field>)`` and add the
    fields' help to the class docstring's ``Args``: jsonargparse (``sdgs fit --splat.*``, ``--help``) reads
    both, so the options, their defaults and their help come from :class:`SplatFitConfig` alone."""
    own_hints = typing.get_type_hints(cls.__init__)
    own = [
        p.replace(annotation=own_hints.get(p.name, p.annotation))
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.kind is not p.VAR_KEYWORD
    ]
    hints = typing.get_type_hints(SplatFitConfig)
    fit = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
        for f in dataclasses.fields(SplatFitConfig)
    ]
    cls.__init__.__signature__ = inspect.Signature([*own, *fit])
    cls.__doc__ = (
        (cls.__doc__ or "").rstrip()
        + "\n"
        + "".join(f"        {name}: {text}\n" for name, text in SplatFitConfig.help().items())
    )


_derive_arguments_from_the_fit_config(GaussianSplattingStage)
