"""NYUv2 labeled set with focal stacks synthesised on the fly (DEReD optics by default).

Files (docs/protocols.md, "NYUv2"):

* ``nyu_depth_v2_labeled.mat``: MATLAB v7.3 = HDF5. h5py shows MATLAB's column-major arrays reversed:
  ``images (N, 3, 640, 480)`` uint8 and ``depths (N, 640, 480)`` metres, so one sample is
  ``images[i].transpose(2, 1, 0)`` → ``(480, 640, 3)`` and ``depths[i].T`` → ``(480, 640)``. A plain
  ``reshape`` silently scrambles the image.
* ``splits.mat``: ``trainNdxs`` (795) / ``testNdxs`` (654), 1-based; MATLAB v5 (scipy) or v7.3 (h5py).

Each sample is resized to 320x240 (DEReD's render size; the NYUV2 preset's 12 um pixel pitch refers to
it) and its focal stack is rendered by :func:`datamodules.defocus.synthesize_focal_stack`. Optional crop:
none (default, as DEReD) or Eigen ``[45:471, 41:601]``. The validation split is the last
``val_fraction`` of the training indices (DEReD validates on part of the test set; we do not).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from datamodules.base import FocalStackDataModule, StackDataset, make_item
from datamodules.defocus import synthesize_stack_cached
from sdgs.batch import DataError
from sdgs.metrics import EIGEN_CROP
from sdgs.optics import NYUV2, Camera, get_camera

__all__ = ["NYUv2Dataset", "NYUv2DataModule", "read_splits"]


def read_splits(path: str | Path) -> dict[str, np.ndarray]:
    """0-based ``train`` / ``test`` indices from ``splits.mat`` (MATLAB v5 via scipy, v7.3 via h5py)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"missing NYUv2 splits file: {path} (pass --data.splits_path pointing at splits.mat)")
    raw: dict[str, np.ndarray] = {}
    try:
        import scipy.io

        raw = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    except (NotImplementedError, ValueError):  # v7.3 files are HDF5
        try:
            import h5py

            with h5py.File(path, "r") as f:
                raw = {k: np.asarray(f[k]) for k in f.keys()}
        except Exception as err:
            raise DataError(f"cannot read {path}: {err} (expected MATLAB splits.mat with trainNdxs/testNdxs)") from err
    except Exception as err:
        raise DataError(f"cannot read {path}: {err} (file corrupt? re-download splits.mat)") from err
    out = {}
    for key, name in (("trainNdxs", "train"), ("testNdxs", "test")):
        if key not in raw:
            raise DataError(f"{path} has no '{key}' (keys: {sorted(raw)}); expected the NYUv2 splits.mat")
        idx = np.asarray(raw[key]).reshape(-1).astype(np.int64) - 1  # MATLAB is 1-based
        if (idx < 0).any():
            raise DataError(f"{path}: '{key}' holds indices < 1; NYUv2 splits are 1-based")
        out[name] = idx
    return out


class NYUv2Dataset(StackDataset):
    """Samples of ``nyu_depth_v2_labeled.mat`` with synthesised focal stacks.

    Args:
        mat_path: the labeled .mat (HDF5); opened lazily once per worker process.
        indices: 0-based sample indices of this split.
        camera: optics of the synthesis (NYUV2 = DEReD); its size is the output size.
        crop: ``"none"`` or ``"eigen"`` (applied at 480x640 before resizing).
        num_layers: depth slabs of the synthesis.
        cache_dir: optional folder for synthesised stacks (uint8 .npy, written atomically).
    """

    def __init__(
        self,
        mat_path: str | Path,
        indices: np.ndarray | list[int],
        camera: Camera = NYUV2,
        crop: Literal["none", "eigen"] = "none",
        num_layers: int = 32,
        cache_dir: str | Path | None = None,
        **kw,
    ) -> None:
        super().__init__(**kw)
        if crop not in ("none", "eigen"):
            raise ValueError(f"crop must be 'none' or 'eigen', got {crop!r}")
        self.mat_path = Path(mat_path)
        self.indices = [int(i) for i in indices]
        self.camera, self.crop, self.num_layers = camera, crop, num_layers
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self._file = None
        self._pid = None
        self._check_file()

    def _open(self):
        import h5py

        if self._file is None or self._pid != os.getpid():  # one handle per worker process
            try:
                self._file = h5py.File(self.mat_path, "r")
            except Exception as err:
                raise DataError(
                    f"cannot open {self.mat_path}: {err} (expected the HDF5 nyu_depth_v2_labeled.mat)"
                ) from err
            self._pid = os.getpid()
        return self._file

    def _check_file(self) -> None:
        if not self.mat_path.is_file():
            raise DataError(f"missing NYUv2 file: {self.mat_path} (pass --data.mat_path to nyu_depth_v2_labeled.mat)")
        f = self._open()
        missing = [k for k in ("images", "depths") if k not in f]
        if missing:
            raise DataError(
                f"{self.mat_path} lacks {missing} (keys: {sorted(f.keys())}); is it the labeled NYUv2 .mat?"
            )
        n, c, w, h = f["images"].shape
        if c != 3 or f["depths"].shape != (n, w, h):
            raise DataError(
                f"{self.mat_path}: images {f['images'].shape} / depths {f['depths'].shape} do not have the "
                "NYUv2 layout (N, 3, W, H) / (N, W, H)"
            )
        if self.indices and max(self.indices) >= n:
            raise DataError(f"split index {max(self.indices)} out of range for {n} samples in {self.mat_path}")
        self._file.close()
        self._file = None

    def __len__(self) -> int:
        return len(self.indices)

    def describe(self, i: int) -> str:
        return f"NYUv2 sample {self.indices[i]} of {self.mat_path}"

    def _frame(self, idx: int) -> tuple[torch.Tensor, torch.Tensor, Camera]:
        f = self._open()
        rgb = np.asarray(f["images"][idx]).transpose(2, 1, 0)  # (3, W, H) -> (H, W, 3)
        depth = np.asarray(f["depths"][idx], dtype=np.float32).T  # (W, H) -> (H, W)
        full = get_camera(self.camera).resize(*rgb.shape[:2])  # intrinsics at 480x640
        if self.crop == "eigen":
            top, bottom, left, right = EIGEN_CROP
            rgb, depth = rgb[top:bottom, left:right], depth[top:bottom, left:right]
            full = full.crop(top, left, bottom - top, right - left)
        out_h, out_w = self.camera.height_px, self.camera.width_px
        if self.crop == "eigen":  # keep the aspect of the crop at the preset's width
            out_h = round(out_w * rgb.shape[0] / rgb.shape[1])
        img = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255.0
        img = F.interpolate(img, size=(out_h, out_w), mode="bilinear", antialias=True, align_corners=False)[0]
        dep = torch.from_numpy(np.ascontiguousarray(depth))[None, None]
        dep = F.interpolate(dep, size=(out_h, out_w), mode="nearest")[0]
        cam = full.resize(out_h, out_w)
        # the lens (f, N) is the preset's; the pixel pitch refers to the preset's render size
        cam = Camera(
            self.camera.focal_length_m, self.camera.f_number, self.camera.pixel_size_m * self.camera.width_px / out_w,
            out_w, out_h, cam.fx_px, cam.fy_px, cam.cx_px, cam.cy_px, self.camera.focus_distances_m,
            self.camera.depth_range_m, self.camera.name,
        )  # fmt: skip
        return img.clamp(0, 1), dep, cam

    def _cache_file(self, idx: int) -> Path | None:
        if self.cache_dir is None:
            return None
        key = hashlib.sha1(f"{self.camera.cache_key()}|{self.crop}|{self.num_layers}".encode()).hexdigest()[:12]
        return self.cache_dir / key / f"{idx:05d}.npy"

    def load(self, i: int):
        idx = self.indices[i]
        rgb, depth, cam = self._frame(idx)
        if torch.isnan(depth).any():
            raise DataError(f"{self.describe(i)}: depth holds NaN; the labeled set's depths are in-painted")
        stack = synthesize_stack_cached(rgb, depth, cam, self.num_layers, self._cache_file(idx))
        return make_item(stack, cam.focus_distances_m, depth, cam, i)


class NYUv2DataModule(FocalStackDataModule):
    """NYUv2 DataModule (``--data=datamodules.NYUv2DataModule --data.mat_path=… --data.splits_path=…``).

    Args:
        mat_path: ``nyu_depth_v2_labeled.mat``.
        splits_path: ``splits.mat``.
        camera: synthesis optics (preset name or JSON); default DEReD's (``nyuv2``).
        crop: ``"none"`` (DEReD) or ``"eigen"``.
        val_fraction: last fraction of the training indices used for validation.
        num_layers: depth slabs of the synthesis.
        cache_dir: optional on-disk cache of synthesised stacks.
        **kwargs: :class:`~datamodules.base.FocalStackDataModule` options.
    """

    def __init__(
        self,
        mat_path: str = "data/nyuv2/nyu_depth_v2_labeled.mat",
        splits_path: str = "data/nyuv2/splits.mat",
        camera: str = "nyuv2",
        crop: Literal["none", "eigen"] = "none",
        val_fraction: float = 0.05,
        num_layers: int = 32,
        cache_dir: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.mat_path, self.splits_path = mat_path, splits_path
        self._camera = get_camera(camera)
        self.crop, self.val_fraction, self.num_layers, self.cache_dir = crop, val_fraction, num_layers, cache_dir

    @property
    def camera(self) -> Camera:
        return self._camera

    @property
    def identity(self) -> str:
        return f"nyuv2:{Path(self.mat_path).expanduser().resolve()}:{self.crop}"

    def build_datasets(self) -> dict[str, StackDataset]:
        splits = read_splits(self.splits_path)
        train = splits["train"]
        n_val = max(1, int(round(len(train) * self.val_fraction)))
        kw = {
            "camera": self._camera,
            "crop": self.crop,
            "num_layers": self.num_layers,
            "cache_dir": self.cache_dir,
            "skip_bad": self.skip_bad,
        }
        return {
            "train": NYUv2Dataset(self.mat_path, train[:-n_val], crop_size=self.crop_size, augment=True, **kw),
            "val": NYUv2Dataset(self.mat_path, train[-n_val:], crop_size=self.eval_crop_size, **kw),
            "test": NYUv2Dataset(self.mat_path, splits["test"], crop_size=self.eval_crop_size, **kw),
        }
