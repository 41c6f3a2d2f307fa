"""FoD500 (DefocusNet ``fs_6``): flat folder of ``{i:06}_{k:02}All.tif`` (k = 0..4) + ``{i:06}Dpt.exr``.

Format and split as every peer reads it (docs/protocols.md, "FoD500"): 8-bit RGB TIFs, depth as HALF float in
channel R (metres), focus distances [0.1, 0.15, 0.3, 0.7, 1.5] m in file order, scenes ``i < 400`` train
and ``i >= 400`` test. The validation split is the last ``val_fraction`` of the training scenes
(DefocusNet keeps 400/100 without a validation split; ours never touches test scenes).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from datamodules.base import FocalStackDataModule, StackDataset, make_item, require_dir
from sdgs.batch import DataError
from sdgs.io import read_exr_depth, read_stack, write_exr_depth, write_image
from sdgs.optics import FOD500, Camera

__all__ = ["FoD500Dataset", "FoD500DataModule", "write_fod500_sample", "fod500_indices"]

_DEPTH_RE = re.compile(r"^(\d{6})Dpt\.exr$")


def image_path(root: Path, i: int, k: int) -> Path:
    return root / f"{i:06d}_{k:02d}All.tif"


def depth_path(root: Path, i: int) -> Path:
    return root / f"{i:06d}Dpt.exr"


def fod500_indices(root: str | Path) -> list[int]:
    """Scene indices present in a FoD500-format folder (one per ``Dpt.exr``), sorted."""
    root = require_dir(root, "FoD500 folder", "pass --data.data_dir pointing at the unzipped fs_6 folder")
    return sorted(int(m.group(1)) for p in root.iterdir() if (m := _DEPTH_RE.match(p.name)))


def write_fod500_sample(root: str | Path, i: int, stack: np.ndarray, depth: np.ndarray) -> None:
    """Write one scene in FoD500 format: ``stack`` ``(S, H, W, 3)`` in [0, 1], ``depth`` ``(H, W)`` m.

    Each file is written atomically (temporary name, then rename), the depth last, so a scene is only
    listed (by its ``Dpt.exr``) once all its images exist.
    """
    root = Path(root)
    for k, img in enumerate(stack):
        write_image(image_path(root, i, k), img)
    write_exr_depth(depth_path(root, i), depth)


class FoD500Dataset(StackDataset):
    """Scenes of a FoD500-format folder.

    Args:
        root: the folder.
        indices: scene indices of this split.
        camera: optics (FoD500 preset; focus distances from it).
        num_images: images per stack (5 in FoD500).
    """

    def __init__(
        self, root: str | Path, indices: list[int], camera: Camera = FOD500, num_images: int = 5, **kw
    ) -> None:
        super().__init__(**kw)
        self.root = Path(root)
        self.indices = list(indices)
        self.camera = camera
        self.num_images = num_images
        if len(camera.focus_distances_m) != num_images:
            raise DataError(
                f"camera {camera.name} has {len(camera.focus_distances_m)} focus distances for stacks of "
                f"{num_images} images; set num_images or use a camera with matching focus_distances_m"
            )

    def __len__(self) -> int:
        return len(self.indices)

    def describe(self, i: int) -> str:
        return f"FoD500 scene {self.indices[i]:06d} in {self.root}"

    def load(self, i: int):
        idx = self.indices[i]
        stack = read_stack([image_path(self.root, idx, k) for k in range(self.num_images)])
        depth = read_exr_depth(depth_path(self.root, idx))
        if depth.shape != stack.shape[1:3]:
            raise DataError(
                f"{depth_path(self.root, idx)}: depth is {depth.shape} but the images are {stack.shape[1:3]}"
            )
        return make_item(stack, self.camera.focus_distances_m, depth, self.camera, i)


class FoD500DataModule(FocalStackDataModule):
    """FoD500 DataModule (``sdgs fit --data=datamodules.FoD500DataModule --data.data_dir=…``).

    Args:
        data_dir: folder with the FoD500 files (or a procedural set written by ``sdgs synth``).
        train_split_index: scenes below it train, the rest test (400 as DFV / AiFDepthNet).
        val_fraction: last fraction of the training scenes used for validation.
        camera: optics preset name or camera JSON.
        **kwargs: :class:`~datamodules.base.FocalStackDataModule` options.
    """

    def __init__(
        self,
        data_dir: str = "data/fod500",
        train_split_index: int = 400,
        val_fraction: float = 0.1,
        camera: str = "fod500",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.data_dir = data_dir
        self.train_split_index = train_split_index
        self.val_fraction = val_fraction
        from sdgs.optics import get_camera

        self._camera = get_camera(camera)

    @property
    def camera(self) -> Camera:
        return self._camera

    @property
    def identity(self) -> str:
        return f"fod500:{Path(self.data_dir).expanduser().resolve()}"

    def build_datasets(self) -> dict[str, StackDataset]:
        indices = fod500_indices(self.data_dir)
        if not indices:
            raise DataError(
                f"no '*Dpt.exr' scenes in {self.data_dir}: expected FoD500 files like 000000_00All.tif and "
                "000000Dpt.exr (unzip fs_6.zip there, or write a procedural set with `sdgs synth --out DIR`)"
            )
        train = [i for i in indices if i < self.train_split_index]
        test = [i for i in indices if i >= self.train_split_index]
        if not test:  # a small procedural folder: hold out the last fifth
            cut = max(1, len(indices) * 4 // 5)
            train, test = indices[:cut], indices[cut:] or indices[-1:]
        n_val = max(1, int(round(len(train) * self.val_fraction))) if len(train) > 1 else 0
        val = train[len(train) - n_val :] if n_val else train
        train = train[: len(train) - n_val] if n_val else train
        kw = {"camera": self.camera, "num_images": len(self.camera.focus_distances_m), "skip_bad": self.skip_bad}
        return {
            "train": FoD500Dataset(self.data_dir, train, crop_size=self.crop_size, augment=True, **kw),
            "val": FoD500Dataset(self.data_dir, val, crop_size=self.eval_crop_size, **kw),
            "test": FoD500Dataset(self.data_dir, test, crop_size=self.eval_crop_size, **kw),
        }
