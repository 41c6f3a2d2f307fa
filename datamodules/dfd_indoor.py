"""D3-Net's real DSLR indoor depth-from-defocus set (Carvalho et al., 3DRW ECCV Workshop 2018).

Layout as published (``marcelampc/d3net_depth_estimation``, ``dfd_datasets/dfd_indoor/``)::

    <data_dir>/dfd_dataset_indoor_<N2_8|N8>/rgb/<train|test>/<timestamp>.JPG     645x432 RGB
    <data_dir>/dfd_dataset_indoor_<N2_8|N8>/depth/<train|test>/<timestamp>.png   uint16 mm, 0 = invalid

Names are capture timestamps (``2018-04-26T17:26:34.505212``); an image and its depth map differ by up
to 0.3 s. Each image is paired with the depth of the NEAREST timestamp, never by sorted order: in the
public test split one image has no depth partner and sorted order shifts 9 of 29 pairs. Images with no
depth within ``max_gap_s`` are left out with one warning naming them.

Items:

* default: the real image of the chosen aperture as a stack of one (S = 1) at the focus of 1.7 m, with
  the ``dfd_indoor`` camera (N = 2.8 or 8): real blur for testing single-image models;
* ``synthesize=True``: a focal stack synthesised from the nearly sharp f/8 image and its depth with a
  preset's optics (``nyuv2`` by default; ``synth_focus_m`` sets its focus distances), through the synthesis
  path NYUv2 uses. Depth holes are filled from their surroundings for the synthesis only; the item's depth
  keeps 0 there.
* ``synthesize=True, real_in_stack=True``: the same stack with the scene's REAL f/2.8 photo (focus 1.7 m)
  appended as its last image. The f/2.8 and f/8 captures of a scene share one depth map (the same file
  name in both folders), which pairs them. The stack then mixes synthesised and real lens blur of one
  camera, so the synthesis must use the real camera's optics (``synth_camera="dfd_indoor"``).

The validation split is the last ``val_fraction`` of ``train/`` in time order; ``test/`` is the test split.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from datamodules.base import FocalStackDataModule, StackDataset, make_item, require_dir
from datamodules.defocus import synthesize_stack_cached
from sdgs.io import DataError, read_depth, read_image
from sdgs.optics import DFD_INDOOR, Camera, gaussian_psf_blur, get_camera

__all__ = [
    "DFDIndoorDataset", "DFDIndoorDataModule", "dfd_pairs", "pair_by_timestamp", "fill_depth_holes", "real_partners",
]  # fmt: skip

log = logging.getLogger(__name__)

APERTURES = {"N2_8": 2.8, "N8": 8.0}


def _timestamp(path: Path) -> float:
    try:
        return datetime.fromisoformat(path.stem).timestamp()
    except ValueError as err:
        raise DataError(
            f"{path}: the name is not a capture timestamp like 2018-04-26T17:26:34.505212 "
            "(DFD-indoor pairs images and depth maps by the timestamps in their names)"
        ) from err


def pair_by_timestamp(
    images: list[Path], depths: list[Path], max_gap_s: float = 1.0
) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """Pair each image with the depth map of the nearest capture time.

    Args:
        images, depths: files named by timestamp, any order.
        max_gap_s: largest accepted time difference (s).

    Returns:
        ``(pairs, orphans)``: ``(image, depth)`` pairs in time order, and the images left without a depth
        map within ``max_gap_s``.
    """
    if not depths:
        return [], sorted(images, key=_timestamp)
    depth_times = np.array([_timestamp(p) for p in depths])
    pairs, orphans = [], []
    for image in sorted(images, key=_timestamp):
        gaps = np.abs(depth_times - _timestamp(image))
        j = int(gaps.argmin())
        if gaps[j] <= max_gap_s:
            pairs.append((image, depths[j]))
        else:
            orphans.append(image)
    return pairs, orphans


def dfd_pairs(data_dir: str | Path, aperture: str, split: str, max_gap_s: float = 1.0) -> list[tuple[Path, Path]]:
    """``(image, depth)`` pairs of one aperture folder and split, in time order (one warning on orphans)."""
    if aperture not in APERTURES:
        raise ValueError(f"aperture must be one of {sorted(APERTURES)}, got {aperture!r}")
    root = Path(data_dir).expanduser() / f"dfd_dataset_indoor_{aperture}"
    rgb_dir = require_dir(root / "rgb" / split, "DFD-indoor image folder", "pass --data.data_dir=…/dfd_indoor")
    depth_dir = require_dir(root / "depth" / split, "DFD-indoor depth folder", "pass --data.data_dir=…/dfd_indoor")
    images = [p for p in rgb_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    depths = [p for p in depth_dir.iterdir() if p.suffix.lower() == ".png"]
    if not images:
        raise DataError(f"no images in {rgb_dir}: expected <timestamp>.JPG files (the published layout)")
    pairs, orphans = pair_by_timestamp(images, depths, max_gap_s)
    if orphans:
        log.warning(
            "DFD-indoor %s/%s: %d image(s) without a depth map within %.1f s left out: %s",
            aperture, split, len(orphans), max_gap_s, ", ".join(p.name for p in orphans),
        )  # fmt: skip
    if not pairs:
        raise DataError(f"no image of {rgb_dir} has a depth map in {depth_dir} within {max_gap_s} s")
    return pairs


def real_partners(
    data_dir: str | Path, pairs: list[tuple[Path, Path]], split: str, max_gap_s: float = 1.0, aperture: str = "N2_8"
) -> list[Path]:
    """The real photo (``aperture`` folder) of each ``(image, depth)`` pair: the capture whose depth map has its
    name.

    Both aperture folders hold the same depth maps under the same names, so the depth name is the scene's
    key. A scene without an f/2.8 partner raises, naming it.
    """
    by_depth = {depth.name: image for image, depth in dfd_pairs(data_dir, aperture, split, max_gap_s)}
    missing = [depth.name for _, depth in pairs if depth.name not in by_depth]
    if missing:
        raise DataError(
            f"{data_dir}/dfd_dataset_indoor_{aperture}/depth/{split} lacks {len(missing)} depth map(s) of the "
            f"f/8 folder ({', '.join(missing[:3])}): real_in_stack pairs the apertures by depth name; copy the "
            "complete published folders or set real_in_stack=false"
        )
    return [by_depth[depth.name] for _, depth in pairs]


def fill_depth_holes(depth: Tensor) -> Tensor:
    """Fill zeros of a ``(1, H, W)`` depth map (m) with the mean of valid neighbours, growing inwards.

    For synthesis only (the renderer needs depth everywhere); an all-invalid map raises.
    """
    valid = (depth > 0).to(depth.dtype)[None]
    if valid.all():
        return depth
    if not valid.any():
        raise DataError("depth map has no valid pixel; cannot synthesise a focal stack from it")
    out = (depth * valid[0])[None]
    while not bool(valid.all()):
        total = F.avg_pool2d(out * valid, 3, stride=1, padding=1, count_include_pad=False)
        weight = F.avg_pool2d(valid, 3, stride=1, padding=1, count_include_pad=False)
        grow = (valid == 0) & (weight > 0)
        out = torch.where(grow, total / weight.clamp_min(1e-12), out)
        valid = torch.where(grow, torch.ones_like(valid), valid)
    return out[0]


def checked_depth_scales(depth_scales: Sequence[float], synthesized: bool) -> tuple[float, ...]:
    """``depth_scales`` as a tuple of floats; raises on an empty list, a factor <= 0, or moved copies of
    real photos (a photo has one depth: moving a room needs its stack re-synthesised)."""
    scales = tuple(float(k) for k in depth_scales)
    if not scales or any(not k > 0 for k in scales):
        raise ValueError(f"data.depth_scales must be positive factors, got {list(depth_scales)}")
    if scales != (1.0,) and not synthesized:
        raise ValueError("data.depth_scales moves scenes by re-synthesising their stacks: set data.synthesize=true")
    return scales


class DFDIndoorDataset(StackDataset):
    """Pairs of DFD-indoor image + depth; real single images or synthesised focal stacks.

    Args:
        pairs: ``(image, depth)`` files (from :func:`dfd_pairs`).
        camera: the real camera of the images (``dfd_indoor`` with the aperture's N).
        width: output width (px; height keeps the aspect, camera resized with its pixel pitch scaled);
            None = the files' width, or the synthesis preset's width with ``synth_camera``.
        synth_camera: synthesis optics; None = real single images.
        num_layers: depth slabs of the synthesis.
        cache_dir: optional folder for synthesised stacks.
        real_images: with ``synth_camera``, one real photo per pair (same size and scene), appended to the
            synthesised stack at ``real_focus_m``.
        real_focus_m: focus distance of ``real_images`` (m; DFD-indoor: 1.7).
        depth_scales: with ``synth_camera``, each scene once per factor ``k``: its depth times ``k`` (the room
            moved ``k`` times farther) and its stack synthesised from that depth. ``k = 1`` is the scene as
            captured (with its real photo); for ``k != 1`` a synthesised twin of the real photo (its lens, its
            focus) takes the real photo's place, whose blur belongs to the captured depth only. Items are
            ordered scale by scale: item ``i`` is scene ``i % len(pairs)`` at ``depth_scales[i // len(pairs)]``.
        twins_only: with ``real_images``, the twin takes the real photo's place at ``k = 1`` too: no real photo
            in any stack (a training set whose real photos would otherwise all sit at the captured scale).
        twin_base_blur_px: Gaussian σ (px) added to every synthesised twin of a real photo: the real photos'
            blur beyond the thin lens (in focus too; ``bench/real.json`` ``real_blur``), so that a twin looks like
            the photo it stands in for. The other synthesised images stay the thin lens's.
        fit_real: with ``real_images``, the splatting stage fits the real photo with the synthesised images
            (items get ``fit_images``, False at the real photo, when not). The real photo is a second capture:
            shifted by up to a few pixels against its f/8 partner and softer than the lens model (its
            registration, exposure and JPEG are not the synthesis's); the networks still learn from it.
    """

    def __init__(
        self,
        pairs: list[tuple[Path, Path]],
        camera: Camera = DFD_INDOOR,
        width: int | None = None,
        synth_camera: Camera | None = None,
        num_layers: int = 32,
        cache_dir: str | Path | None = None,
        real_images: list[Path] | None = None,
        real_focus_m: float = DFD_INDOOR.focus_distances_m[0],
        depth_scales: tuple[float, ...] = (1.0,),
        twins_only: bool = False,
        twin_base_blur_px: float = 0.0,
        fit_real: bool = True,
        **kw,
    ) -> None:
        super().__init__(**kw)
        if real_images is not None and (synth_camera is None or len(real_images) != len(pairs)):
            raise ValueError("real_images needs synth_camera and one real photo per (image, depth) pair")
        self.depth_scales = checked_depth_scales(depth_scales, synth_camera is not None)
        self.pairs = list(pairs)
        self.real_images, self.real_focus_m = real_images, real_focus_m
        if twins_only and real_images is None:
            raise ValueError("twins_only replaces real photos by their twins: it needs real_images")
        self.twins_only, self.fit_real = twins_only, fit_real
        if not 0 <= twin_base_blur_px <= 5:
            raise ValueError(f"twin_base_blur_px is a blur of a few pixels at most (0-5 px), got {twin_base_blur_px}")
        self.twin_base_blur_px = twin_base_blur_px
        self.camera, self.synth_camera, self.num_layers = camera, synth_camera, num_layers
        self.width = width if width is not None or synth_camera is None else synth_camera.width_px
        self.cache_dir = None if cache_dir is None else Path(cache_dir)

    def __len__(self) -> int:
        return len(self.pairs) * len(self.depth_scales)

    def _scene(self, i: int) -> tuple[int, float]:
        """Scene index and depth factor of item ``i``."""
        return i % len(self.pairs), self.depth_scales[i // len(self.pairs)]

    def describe(self, i: int) -> str:
        scene, k = self._scene(i)
        image, depth = self.pairs[scene]
        return f"DFD-indoor image {image} (depth {depth.name}" + (f", times {k:g})" if k != 1 else ")")

    def _resized(self, rgb: Tensor) -> Tensor:
        """``(3, h, w)`` image at the output width (aspect kept)."""
        h, w = rgb.shape[-2:]
        if self.width is None or self.width == w:
            return rgb
        size = (max(1, round(self.width * h / w)), self.width)
        return F.interpolate(rgb[None], size=size, mode="bilinear", antialias=True)[0].clamp(0, 1)

    def _frame(self, i: int) -> tuple[Tensor, Tensor, Camera]:
        """Image ``(3, H, W)``, depth ``(1, H, W)`` m (0 = invalid) and the real camera at the output size."""
        image_path, depth_path = self.pairs[i]
        rgb = read_image(image_path)
        depth = read_depth(depth_path)  # uint16 mm -> m, 0 stays 0
        if depth.shape != rgb.shape[:2]:
            raise DataError(
                f"{depth_path}: depth is {depth.shape} but {image_path.name} is {rgb.shape[:2]}; "
                "pairs must have one size (re-copy the files)"
            )
        h, w = rgb.shape[:2]
        cam = self.camera.resize(h, w)  # the files' size, should they not be 645x432
        img = torch.from_numpy(rgb).permute(2, 0, 1)
        dep = torch.from_numpy(depth)[None]
        if self.width is not None and self.width != w:
            img = self._resized(img)
            out_h, out_w = img.shape[-2:]
            dep = F.interpolate(dep[None], size=(out_h, out_w), mode="nearest")[0]  # never mixes holes in
            cam = cam.resize(out_h, out_w)
        return img, dep, cam

    def _cache_file(self, scene: int, focus_m: tuple[float, ...], scale: float) -> Path | None:
        if self.cache_dir is None or self.synth_camera is None:
            return None
        optics = replace(self.synth_camera, focus_distances_m=focus_m)
        key = f"{optics.cache_key()}|{self.width}|{self.num_layers}"
        name = self.pairs[scene][0].stem + (f"-x{scale:g}" if scale != 1 else "")
        return self.cache_dir / hashlib.sha1(key.encode()).hexdigest()[:12] / f"{name}.npy"

    def load(self, i: int) -> dict[str, Tensor]:
        scene, scale = self._scene(i)
        img, depth, cam = self._frame(scene)
        if self.synth_camera is None:
            return make_item(img[None], cam.focus_distances_m, depth, cam, i)
        # the preset's lens (f, N, focus) with the pixel pitch scaled to this width, as NYUv2; the pinhole
        # intrinsics stay the real camera's
        syn = self.synth_camera
        fx, fy, cx, cy = cam.intrinsics_px
        lens = replace(
            syn, pixel_size_m=syn.pixel_size_m * syn.width_px / cam.width_px, width_px=cam.width_px,
            height_px=cam.height_px, fx_px=fx, fy_px=fy, cx_px=cx, cy_px=cy,
        )  # fmt: skip
        twin = scale != 1 or self.twins_only
        real_twin = twin and self.real_images is not None
        if real_twin:  # the real photo's blur belongs to the captured depth: a twin
            lens = replace(lens, focus_distances_m=(*lens.focus_distances_m, self.real_focus_m))
        cache = self._cache_file(scene, lens.focus_distances_m, scale)
        stack = synthesize_stack_cached(img, fill_depth_holes(depth) * scale, lens, self.num_layers, cache)
        focus = list(lens.focus_distances_m)
        if real_twin and self.twin_base_blur_px > 0:
            stack = torch.as_tensor(stack).clone()
            blurred = gaussian_psf_blur(stack[-1][None], self.twin_base_blur_px)[0]
            stack[-1] = torch.round(blurred * 255) / 255  # 8 bits, as the photo
        if self.real_images is not None and not twin:
            path = self.real_images[scene]
            real = torch.from_numpy(read_image(path)).permute(2, 0, 1)
            real = self._resized(real)
            if real.shape[-2:] != img.shape[-2:]:
                raise DataError(
                    f"{path}: the real photo is {tuple(real.shape[-2:])} px at the output width but its f/8 "
                    f"partner {self.pairs[scene][0].name} is {tuple(img.shape[-2:])}; pairs must have one size"
                )
            stack = torch.cat([torch.as_tensor(stack), real[None]])
            focus.append(self.real_focus_m)
        item = make_item(stack, focus, depth * scale, lens, i)
        if self.real_images is not None:  # one key for every item of the dataset (they share batches)
            item["fit_images"] = torch.ones(len(focus), dtype=torch.bool)
            item["fit_images"][-1] = self.fit_real or twin
        return item


class DFDIndoorDataModule(FocalStackDataModule):
    """DFD-indoor DataModule (``--data=datamodules.DFDIndoorDataModule --data.data_dir=…/dfd_indoor``).

    Args:
        data_dir: the ``dfd_indoor`` folder (holding ``dfd_dataset_indoor_N2_8`` / ``…_N8``).
        aperture: ``"N2_8"`` (real defocus) or ``"N8"`` (nearly sharp); the real images' folder.
        synthesize: synthesise focal stacks from the f/8 images and depth (ignores ``aperture``).
        synth_camera: synthesis optics (preset name or JSON), default DEReD's ``nyuv2``.
        synth_focus_m: focus distances of the synthesised stack (m); None = the synthesis camera's own.
        real_in_stack: append each scene's real f/2.8 photo (focus 1.7 m) to its synthesised stack, as the last
            image (needs ``synth_camera="dfd_indoor"``: one camera per stack).
        real_aperture: the appended photo's folder: ``"N2_8"`` (real defocus), or ``"N8"`` (nearly sharp, yet
            labelled with the stack's f/2.8 camera: for the no-defocus control, a ground-truth-trained model of
            that image alone, never for the splatting stage).
        depth_scales: training scenes once per factor, moved that many times farther with their stacks
            synthesised anew (:class:`DFDIndoorDataset`; needs ``synthesize``). The captured scenes alone
            (None) tie depth to what a room looks like; moved copies make blur the only cue to its scale.
            Validation and test scenes stay as captured.
        real_in_training: with ``real_in_stack``, False gives the training stacks a synthesised twin of the real
            photo (its lens, its focus) instead of the photo itself, at every scale: the networks never learn
            from a real photo, which would only ever show a room at its captured depth. Validation and test
            keep the real photos.
        twin_base_blur_px: with ``real_in_stack``, Gaussian σ (px) added to the synthesised twins of the real photos
            (:class:`DFDIndoorDataset`): the real photos' blur beyond the thin lens, measured on the training
            pairs.
        real_in_teacher: with ``real_in_stack``, False leaves the real photo out of the splatting stage's fit
            (the teacher fits the synthesised images; the networks still learn from the real photo). The
            photos are second captures, shifted by up to a few pixels against their f/8 partners; on training
            scenes the teacher fits the synthesised images alone much better (``bench/real.json``).
        width: output width in px (None: 645 for real images, the synthesis preset's width otherwise).
        val_fraction: last fraction of ``train/`` (in time order) used for validation.
        max_gap_s: largest image-to-depth time difference accepted when pairing (s).
        num_layers: depth slabs of the synthesis.
        cache_dir: optional on-disk cache of synthesised stacks.
        **kwargs: :class:`~datamodules.base.FocalStackDataModule` options.
    """

    def __init__(
        self,
        data_dir: str = "data/dfd_indoor",
        aperture: Literal["N2_8", "N8"] = "N2_8",
        synthesize: bool = False,
        synth_camera: str = "nyuv2",
        synth_focus_m: list[float] | None = None,
        real_in_stack: bool = False,
        real_aperture: Literal["N2_8", "N8"] = "N2_8",
        depth_scales: list[float] | None = None,
        real_in_training: bool = True,
        real_in_teacher: bool = True,
        twin_base_blur_px: float = 0.0,
        width: int | None = None,
        val_fraction: float = 0.1,
        max_gap_s: float = 1.0,
        num_layers: int = 32,
        cache_dir: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if aperture not in APERTURES:
            raise ValueError(f"aperture must be one of {sorted(APERTURES)}, got {aperture!r}")
        self.data_dir, self.aperture, self.synthesize = data_dir, aperture, synthesize
        self.width, self.val_fraction, self.max_gap_s = width, val_fraction, max_gap_s
        self.num_layers, self.cache_dir = num_layers, cache_dir
        self._synth = get_camera(synth_camera) if synthesize else None
        if self._synth is not None and synth_focus_m is not None:  # Camera checks each distance
            self._synth = replace(self._synth, focus_distances_m=tuple(float(d) for d in synth_focus_m))
        self._real = replace(DFD_INDOOR, f_number=APERTURES["N8" if synthesize else aperture])
        self.real_in_stack, self.real_aperture = real_in_stack, real_aperture
        self.real_in_training, self.real_in_teacher = real_in_training, real_in_teacher
        self.twin_base_blur_px = twin_base_blur_px
        if not real_in_training and not real_in_stack:
            raise ValueError(
                "data.real_in_training=false replaces the stacks' real photos: set data.real_in_stack=true"
            )
        if real_aperture not in APERTURES:
            raise ValueError(f"real_aperture must be one of {sorted(APERTURES)}, got {real_aperture!r}")
        self.depth_scales = checked_depth_scales(depth_scales or (1.0,), synthesize)  # fails at parse time
        if real_in_stack:
            optics = lambda c: (c.focal_length_m, c.f_number, c.pixel_size_m * c.width_px)  # noqa: E731
            if self._synth is None or optics(self._synth) != optics(DFD_INDOOR):
                raise ValueError(
                    "data.real_in_stack=true appends the real f/2.8 photos to synthesised stacks of one camera: set "
                    "data.synthesize=true and data.synth_camera=dfd_indoor (the photos' own lens)"
                )

    @property
    def camera(self) -> Camera:
        """The items' camera at the files' size (real: ``dfd_indoor``; synthesised: the preset's lens)."""
        return self._real if self._synth is None else self._synth

    @property
    def identity(self) -> str:
        mode = f"synth:{self._synth.cache_key()}" if self._synth is not None else self.aperture
        mode += f":real_in_stack:{self.real_aperture}" if self.real_in_stack else ""
        mode += f":depth_scales:{','.join(f'{k:g}' for k in self.depth_scales)}" if self.depth_scales != (1.0,) else ""
        mode += ":twins_in_training" if not self.real_in_training else ""
        mode += ":real_not_fitted" if self.real_in_stack and not self.real_in_teacher else ""
        mode += f":twin_blur:{self.twin_base_blur_px:g}" if self.real_in_stack and self.twin_base_blur_px else ""
        return f"dfd_indoor:{Path(self.data_dir).expanduser().resolve()}:{mode}:{self.width}"

    def build_datasets(self) -> dict[str, StackDataset]:
        folder = "N8" if self.synthesize else self.aperture
        kw = {
            "camera": self._real,
            "width": self.width,
            "synth_camera": self._synth,
            "num_layers": self.num_layers,
            "cache_dir": self.cache_dir,
            "skip_bad": self.skip_bad,
            "fit_real": self.real_in_teacher,
            "twin_base_blur_px": self.twin_base_blur_px,
        }
        reals = lambda pairs, split: (  # noqa: E731
            real_partners(self.data_dir, pairs, split, self.max_gap_s, self.real_aperture)
            if self.real_in_stack
            else None
        )
        train = dfd_pairs(self.data_dir, folder, "train", self.max_gap_s)
        n_val = max(1, int(round(len(train) * self.val_fraction))) if len(train) > 1 and self.val_fraction > 0 else 0
        val, train = (train[len(train) - n_val :], train[: len(train) - n_val]) if n_val else (train, train)
        datasets: dict[str, StackDataset] = {
            "train": DFDIndoorDataset(
                train,
                crop_size=self.crop_size,
                augment=True,
                real_images=reals(train, "train"),
                depth_scales=self.depth_scales,
                twins_only=not self.real_in_training,
                **kw,
            ),
            "val": DFDIndoorDataset(val, crop_size=self.eval_crop_size, real_images=reals(val, "train"), **kw),
        }
        test_dir = Path(self.data_dir).expanduser() / f"dfd_dataset_indoor_{folder}" / "rgb" / "test"
        if test_dir.is_dir():
            test = dfd_pairs(self.data_dir, folder, "test", self.max_gap_s)
            datasets["test"] = DFDIndoorDataset(
                test, crop_size=self.eval_crop_size, real_images=reals(test, "test"), **kw
            )
        return datasets

    def dataset(self, split: str) -> StackDataset:
        self.setup()
        if split == "test" and "test" not in self.datasets:
            raise DataError(
                f"no DFD-indoor test split: {self.data_dir}/dfd_dataset_indoor_*/rgb/test is missing "
                "(copy the published test/ folders next to train/)"
            )
        return super().dataset(split)
