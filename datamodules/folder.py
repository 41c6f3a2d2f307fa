"""Users' own focal stacks: one folder per scene with its images and a ``stack.json``.

Layout::

    ROOT/
      scene_a/
        stack.json          {"focus_distances_m": [0.3, 0.5, 1.0],          # one per image, sorted by name
                             "camera": "fod500" | {...Camera fields...},    # optics (preset or fields)
                             "images": ["a.png", "b.png", "c.png"]}         # optional explicit order
        000.png 001.png 002.png                                             # JPG/PNG/TIF, 8/16-bit
        depth.png | depth.exr | depth.npy                                   # optional: mm uint16 / m / m
      scene_b/ ...

``ROOT/train``, ``ROOT/val`` and ``ROOT/test`` sub-folders are used as splits when present; otherwise
the scenes (sorted by name) are split by ``val_fraction`` / ``test_fraction``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datamodules.base import FocalStackDataModule, StackDataset, make_item, require_dir
from sdgs.batch import DataError
from sdgs.io import DEPTH_NAMES, read_depth, read_stack, read_stack_json
from sdgs.optics import Camera

__all__ = ["FocalStackFolderDataset", "FocalStackFolderDataModule"]


class FocalStackFolderDataset(StackDataset):
    """Scene folders of a user's focal stacks (module docstring)."""

    def __init__(self, scenes: list[Path], **kw) -> None:
        super().__init__(**kw)
        self.scenes = list(scenes)

    def __len__(self) -> int:
        return len(self.scenes)

    def describe(self, i: int) -> str:
        return f"scene folder {self.scenes[i]}"

    def load(self, i: int):
        scene = self.scenes[i]
        paths, focus, camera = read_stack_json(scene)
        stack = read_stack(paths)
        depth = None
        for name in DEPTH_NAMES:
            if (scene / name).is_file():
                depth = read_depth(scene / name)
                break
        if depth is not None and np.isinf(depth).any():
            depth = np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)  # +inf = no return: invalid
        return make_item(stack, focus, depth, camera, i)


class FocalStackFolderDataModule(FocalStackDataModule):
    """DataModule over a folder of scene folders (module docstring).

    Args:
        root: the folder.
        val_fraction, test_fraction: split fractions when ``root`` has no train/val/test sub-folders.
        **kwargs: :class:`~datamodules.base.FocalStackDataModule` options.
    """

    def __init__(self, root: str = "data/stacks", val_fraction: float = 0.1, test_fraction: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.root, self.val_fraction, self.test_fraction = root, val_fraction, test_fraction

    @property
    def identity(self) -> str:
        return f"folder:{Path(self.root).expanduser().resolve()}"

    @property
    def camera(self) -> Camera:
        self.setup()
        return read_stack_json(self.datasets["train"].scenes[0])[2]

    @staticmethod
    def _scenes(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if p.is_dir() and (p / "stack.json").is_file())

    def build_datasets(self) -> dict[str, StackDataset]:
        root = require_dir(
            self.root, "focal-stack folder", "pass --data.root; see docs/usage.md 'Your own focal stacks'"
        )
        if (root / "train").is_dir():
            splits = {s: self._scenes(root / s) if (root / s).is_dir() else [] for s in ("train", "val", "test")}
            splits["val"] = splits["val"] or splits["train"][-1:]
            splits["test"] = splits["test"] or splits["val"]
        else:
            scenes = self._scenes(root)
            n_test = int(round(len(scenes) * self.test_fraction))
            n_val = int(round(len(scenes) * self.val_fraction))
            train = scenes[: len(scenes) - n_test - n_val] or scenes
            splits = {
                "train": train,
                "val": scenes[len(train) : len(train) + n_val] or train[-1:],
                "test": scenes[len(scenes) - n_test :] if n_test else train[-1:],
            }
        if not splits["train"]:
            raise DataError(f"no scene folders with a stack.json under {root}")
        return {
            split: FocalStackFolderDataset(
                scenes,
                crop_size=self.crop_size if split == "train" else self.eval_crop_size,
                augment=split == "train",
                skip_bad=self.skip_bad,
            )
            for split, scenes in splits.items()
        }
