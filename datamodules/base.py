"""The batch contract shared by every dataset, train-time augmentation and the DataModule base.

A dataset item (a batch has a leading ``B``)::

    stack           (S, 3, H, W) float32 in [0, 1]   focal stack, near focus first
    focus_distance  (S,) float32, metres
    depth           (1, H, W) float32, metres, 0 = invalid / unknown
    camera          dict of float32 scalars from :meth:`sdgs.optics.Camera.to_tensors`
                    (focal_length_m, f_number, pixel_size_m, fx_px, fy_px, cx_px, cy_px,
                    depth_near_m, depth_far_m, width_px, height_px); the renderer rebuilds a batched
                    camera with ``Camera.from_batch``
    index           int64 scalar, the sample's position in its split's dataset (cache key)
    crop            (6,) int64: top, left, height, width, flip_x, flip_y of this view of the full
                    sample (train-time augmentation), so per-sample caches (splatting fits) can be
                    cut to match
    gain            (3,) float32: per-channel gain of the photometric augmentation (ones without it),
                    so the splatting radiance of the sample can be brought to the same colours
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, get_worker_info

from sdgs.batch import (
    DataError,
    apply_crop,  # re-exported: the batch contract
)
from sdgs.optics import Camera

__all__ = [
    "StackDataset",
    "FocalStackDataModule",
    "make_item",
    "check_item",
    "random_crop_flip",
    "photometric_jitter",
    "apply_crop",
    "seed_worker",
]

log = logging.getLogger(__name__)


def make_item(stack: np.ndarray | Tensor, focus: Any, depth: np.ndarray | Tensor | None, camera: Camera, index: int):
    """Assemble and validate an item. ``stack`` ``(S, H, W, 3)`` numpy or ``(S, 3, H, W)`` tensor."""
    if isinstance(stack, np.ndarray):
        stack = torch.from_numpy(np.ascontiguousarray(stack)).permute(0, 3, 1, 2)
    stack = stack.float()
    h, w = stack.shape[-2:]
    if depth is None:
        depth = torch.zeros(1, h, w)
    elif isinstance(depth, np.ndarray):
        depth = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))
    depth = depth.float().reshape(1, *depth.shape[-2:])
    cam = camera if (camera.width_px, camera.height_px) == (w, h) else replace(camera, width_px=w, height_px=h)
    return {
        "stack": stack,
        "focus_distance": torch.as_tensor(focus, dtype=torch.float32),
        "depth": depth,
        "camera": cam.to_tensors(),
        "index": torch.tensor(index, dtype=torch.long),
        "crop": torch.tensor([0, 0, h, w, 0, 0], dtype=torch.long),
    }


def check_item(item: dict[str, Tensor], source: str) -> dict[str, Tensor]:
    """Raise :class:`DataError` (naming ``source``) on inconsistent shapes or invalid values."""
    stack, focus, depth = item["stack"], item["focus_distance"], item["depth"]
    if stack.ndim != 4 or stack.shape[1] != 3:
        raise DataError(f"{source}: stack must be (S, 3, H, W), got {tuple(stack.shape)}")
    if focus.ndim != 1 or focus.numel() != stack.shape[0]:
        raise DataError(
            f"{source}: {focus.numel()} focus distances for a stack of {stack.shape[0]} images; "
            "give one focus distance (m) per image"
        )
    if not torch.isfinite(focus).all() or (focus <= 0).any():
        raise DataError(f"{source}: focus distances must be finite and > 0, got {focus.tolist()}")
    if depth.shape[-2:] != stack.shape[-2:]:
        raise DataError(
            f"{source}: depth map is {tuple(depth.shape[-2:])} but the images are {tuple(stack.shape[-2:])}; "
            "the depth must have the images' size"
        )
    if torch.isnan(depth).any() or (depth < 0).any():
        raise DataError(f"{source}: depth holds NaN or negative values; store invalid pixels as 0")
    if not torch.isfinite(stack).all():
        raise DataError(f"{source}: images hold non-finite values")
    return item


def random_crop_flip(
    item: dict[str, Tensor], size: int | None, generator: torch.Generator | None = None, vertical: bool = True
):
    """Same random crop and horizontal (and, with ``vertical``, vertical) flips for every image of the stack
    and the depth.

    The camera follows: a crop shifts the principal point (pixel pitch kept), a flip mirrors it. Real
    scenes have an up (floor below, ceiling above): turn ``vertical`` off for them.
    """
    h, w = item["stack"].shape[-2:]
    if size is not None and (h > size or w > size):
        sh, sw = min(size, h), min(size, w)
        top = int(torch.randint(0, h - sh + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - sw + 1, (1,), generator=generator))
        item = _crop(item, top, left, sh, sw)
        h, w = sh, sw
    stack, depth, cam, crop = item["stack"], item["depth"], dict(item["camera"]), item["crop"].clone()
    if bool(torch.rand((), generator=generator) < 0.5):
        stack, depth = stack.flip(-1), depth.flip(-1)
        cam["cx_px"] = w - cam["cx_px"]
        crop[4] = 1
    if vertical and bool(torch.rand((), generator=generator) < 0.5):
        stack, depth = stack.flip(-2), depth.flip(-2)
        cam["cy_px"] = h - cam["cy_px"]
        crop[5] = 1
    return {**item, "stack": stack.contiguous(), "depth": depth.contiguous(), "camera": cam, "crop": crop}


def photometric_jitter(
    item: dict[str, Tensor],
    generator: torch.Generator | None = None,
    gain: tuple[float, float] = (0.6, 1.4),
    colour: float = 0.15,
    noise_max: float = 0.02,
) -> dict[str, Tensor]:
    """Exposure, white balance and sensor noise that keep the optics (never a resize: it changes the blur in px).

    One gain for the whole stack times a per-channel factor (``gain`` range, ``1 ± colour``), then per
    image Gaussian read noise of a random sigma in ``[0, noise_max]``, clipped and quantised to 8 bits like
    a capture. Blur, depth and camera are untouched; ``item["gain"]`` records the channel gains.
    """
    rnd = lambda n: torch.rand(n, generator=generator)  # noqa: E731
    channel = (gain[0] + (gain[1] - gain[0]) * rnd(1)) * (1 + colour * (2 * rnd(3) - 1))
    stack = item["stack"] * channel.view(1, 3, 1, 1)
    sigma = noise_max * rnd(stack.shape[0]).view(-1, 1, 1, 1)
    stack = stack + sigma * torch.randn(stack.shape, generator=generator)
    stack = torch.round(stack.clamp(0, 1) * 255) / 255
    return {**item, "stack": stack, "gain": item.get("gain", torch.ones(3)) * channel}


def _crop(item: dict[str, Tensor], top: int, left: int, height: int, width: int) -> dict[str, Tensor]:
    """Crop stack and depth; the camera's principal point shifts (pixel pitch kept), ``crop`` records it."""
    cam = dict(item["camera"])
    cam["cx_px"], cam["cy_px"] = cam["cx_px"] - left, cam["cy_px"] - top
    cam["width_px"], cam["height_px"] = torch.tensor(width), torch.tensor(height)
    crop = item["crop"].clone()
    crop[:4] = torch.tensor([crop[0] + top, crop[1] + left, height, width])
    window = (..., slice(top, top + height), slice(left, left + width))
    return {
        **item,
        "crop": crop,
        "stack": item["stack"][window].contiguous(),
        "depth": item["depth"][window].contiguous(),
        "camera": cam,
    }


class StackDataset(Dataset):
    """Base dataset: subclasses implement ``__len__`` and ``load(i)`` (files opened lazily).

    Args:
        crop_size: train-time random crop (None = full images).
        augment: random crop + flips (training split only).
        skip_bad: on a bad sample, log it and return the next good one instead of raising.

    Attributes:
        photometric: with ``augment``, also :func:`photometric_jitter` (gain, white balance, sensor noise);
            the DataModule's ``photometric`` sets it on the training split.
        vertical_flip: with ``augment``, also flip upside down (the DataModule's ``vertical_flip`` sets it).
    """

    def __init__(self, crop_size: int | None = None, augment: bool = False, skip_bad: bool = False) -> None:
        self.crop_size = crop_size
        self.augment = augment
        self.photometric = False  # set by FocalStackDataModule(photometric=True) on its training split
        self.vertical_flip = True  # set by FocalStackDataModule(vertical_flip=...) on its training split
        self.skip_bad = skip_bad
        # The augmentation stream: its own generator, so crops and flips depend on the data seed only
        # (not on how much of the global RNG the model used) and each loader worker gets its own.
        self.generator = torch.Generator().manual_seed(0)

    def reseed(self, seed: int) -> None:
        """Restart the augmentation stream from ``seed`` (the DataModule and :func:`seed_worker` call it)."""
        self.generator.manual_seed(int(seed))

    def load(self, i: int) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self, i: int) -> str:
        """Human-readable name of sample ``i`` for error messages."""
        return f"{type(self).__name__}[{i}]"

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        for attempt in range(len(self) if self.skip_bad else 1):
            j = (i + attempt) % len(self)
            try:
                item = check_item(self.load(j), self.describe(j))
                break
            except DataError as err:
                if not self.skip_bad:
                    raise
                log.warning("skipping bad sample (skip_bad=True): %s", err)
        else:
            raise DataError(f"{type(self).__name__}: every sample is bad")
        item = {**item, "gain": torch.ones(3)}
        if self.augment:
            item = random_crop_flip(item, self.crop_size, self.generator, self.vertical_flip)
            if self.photometric:
                item = photometric_jitter(item, self.generator)
        elif self.crop_size is not None:
            item = _centre_crop(item, self.crop_size)
        return item


def _centre_crop(item: dict[str, Tensor], size: int) -> dict[str, Tensor]:
    h, w = item["stack"].shape[-2:]
    sh, sw = min(size, h), min(size, w)
    return _crop(item, (h - sh) // 2, (w - sw) // 2, sh, sw)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: reseed this worker's copy of the dataset's augmentation stream.

    PyTorch gives worker ``i`` the seed ``base_seed + i``, with ``base_seed`` drawn from the loader's
    generator, so the workers' streams differ from one another and repeat when the loader's seed does.
    """
    info = get_worker_info()
    if info is not None and isinstance(info.dataset, StackDataset):
        info.dataset.reseed(info.seed)


class FocalStackDataModule(L.LightningDataModule):
    """DataModule base: loaders, worker seeding and splits; subclasses build the three datasets.

    Seeding: each loader gets a generator seeded by :meth:`loader_seed` when it is built (from the
    ``seed_everything`` value under ``sdgs fit``); it orders the shuffle and seeds the workers, whose
    :func:`seed_worker` restarts each worker's augmentation stream from its own seed. Without workers the
    dataset's stream restarts from the same seed. So crops and flips differ between workers and between
    epochs, and a rerun with the same seed repeats them exactly.

    Args:
        batch_size: samples per batch.
        num_workers: loader worker processes (files are opened lazily in each worker).
        pin_memory: pin host memory for faster GPU transfer.
        crop_size: train-time random crop in pixels (None = full images); validation/test use full images
            unless ``eval_crop_size`` is set.
        eval_crop_size: centre crop for validation/test (None = full images).
        skip_bad: log and skip bad samples instead of raising.
        photometric: train-time gain, white-balance and sensor-noise jitter
            (:func:`photometric_jitter`); off by default.
        vertical_flip: train-time upside-down flips (on by default; off for real scenes, which have an up).
    """

    def __init__(
        self,
        batch_size: int = 4,
        num_workers: int = 0,
        pin_memory: bool = False,
        crop_size: int | None = None,
        eval_crop_size: int | None = None,
        skip_bad: bool = False,
        photometric: bool = False,
        vertical_flip: bool = True,
    ) -> None:
        super().__init__()
        self.photometric, self.vertical_flip = photometric, vertical_flip
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.crop_size = crop_size
        self.eval_crop_size = eval_crop_size
        self.skip_bad = skip_bad
        self.datasets: dict[str, StackDataset] = {}

    # subclasses return {"train": ..., "val": ..., "test": ...}
    def build_datasets(self) -> dict[str, StackDataset]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def camera(self) -> Camera:
        """The dataset's camera (preset or user camera)."""
        raise NotImplementedError

    @property
    def identity(self) -> str:
        """A string identifying the data (for splatting caches)."""
        return type(self).__name__

    def setup(self, stage: str | None = None) -> None:
        if not self.datasets:
            self.datasets = self.build_datasets()
            if "train" in self.datasets:
                self.datasets["train"].photometric = self.photometric
                self.datasets["train"].vertical_flip = self.vertical_flip

    def dataset(self, split: str) -> StackDataset:
        self.setup()
        if split not in self.datasets:
            raise KeyError(f"{type(self).__name__} has no split {split!r}; splits: {sorted(self.datasets)}")
        return self.datasets[split]

    def loader_seed(self) -> int:
        """Seed of a loader built now, from ``torch.initial_seed()``, the rank and the epoch.

        ``torch.initial_seed()`` is the ``seed_everything`` value (or torch's own random seed); the global
        rank gives each DDP process its own augmentations, and the epoch keeps loaders that are rebuilt
        every epoch (``reload_dataloaders_every_n_epochs``) from repeating the previous epoch's.
        """
        trainer = self.trainer
        rank, epoch = (trainer.global_rank, trainer.current_epoch) if trainer is not None else (0, 0)
        state = np.random.SeedSequence([torch.initial_seed(), rank, epoch]).generate_state(1, np.uint64)
        return int(state[0])

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.dataset(split)
        seed = self.loader_seed()
        dataset.reseed(seed)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            drop_last=False,
            generator=torch.Generator().manual_seed(seed),
            worker_init_fn=seed_worker,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def require_dir(path: str | Path, what: str, hint: str) -> Path:
    """Existing directory or a :class:`DataError` with a hint."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise DataError(f"{what} not found: {path} ({hint})")
    return path
