"""Procedural focal stacks: the embedded default dataset, so every path runs with no download.

Scenes are a textured background plane (fronto-parallel or slanted) and 1-4 occluding objects (ellipses,
rectangles, smooth blobs; fronto-parallel or slanted), occasionally textureless. Two texture families
(:data:`TEXTURES`): ``pink`` (natural-image-like 1/f^alpha colour noise, the default) and ``geometric``
(stripes, checkerboards, discs, cells, gradients), so a model can be trained on one and tested on the
other; ``posterised`` (1/f noise quantised to flat regions) and ``mixed`` (pink or posterised) add
textureless areas to a training family without borrowing the geometric patterns. Depth stays within the
camera's range. Stacks are rendered with the one synthesis function
(:func:`datamodules.defocus.synthesize_focal_stack`) and quantised to 8 bits like real captures.

Small images are *centre crops of the sensor*, not downscales: the pixel pitch stays that of the
camera (FoD500: 3.1 mm / 256 px), so CoC sizes in pixels (up to ~7 px) match FoD500 at 64-128 px.
Everything is deterministic from ``(seed, index)``.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from datamodules.base import FocalStackDataModule, StackDataset, make_item
from datamodules.defocus import synthesize_focal_stack
from sdgs.batch import DataError
from sdgs.optics import FOD500, Camera, get_camera

__all__ = ["make_scene", "render_scene", "ProceduralDataset", "SyntheticDataModule", "write_procedural_dataset"]

#: seed offsets of the three splits, so held-out scenes never repeat training ones
SPLIT_OFFSETS = {"train": 0, "val": 1_000_003, "test": 2_000_003}
#: the settings of a written set (seed, size, camera), beside its FoD500 files
MANIFEST = "procedural.json"
#: files a written set consists of: FoD500 images/depth, atomic-write leftovers of them, the manifest
_DATASET_FILE = re.compile(
    r"^(\d{6}(_\d{2}All\.tif|Dpt\.exr)|\.\d{6}(_\d{2}All|Dpt)\.\w+\.(tif|exr)|" + re.escape(MANIFEST) + ")$"
)


def _pink_noise(h: int, w: int, alpha: float, g: torch.Generator) -> Tensor:
    """``(H, W)`` 1/f^alpha noise scaled to [0, 1] (natural images have alpha ~ 1-2)."""
    fy = torch.fft.fftfreq(h).view(-1, 1)
    fx = torch.fft.rfftfreq(w).view(1, -1)
    f = torch.sqrt(fx**2 + fy**2).clamp_min(1.0 / max(h, w))
    spec = torch.complex(torch.randn(h, w // 2 + 1, generator=g), torch.randn(h, w // 2 + 1, generator=g))
    img = torch.fft.irfft2(spec / f**alpha, s=(h, w))
    img = img - img.min()
    return img / img.max().clamp_min(1e-8)


def _pink_texture(h: int, w: int, g: torch.Generator, c1: Tensor, c2: Tensor) -> Tensor:
    """The ``pink`` family: ``c1``, ``c2`` mixed by 1/f^alpha noise (alpha in [1, 2]) plus grey fine detail."""
    alpha = 1.0 + float(torch.rand((), generator=g))
    t = _pink_noise(h, w, alpha, g)
    detail = 0.15 * (_pink_noise(h, w, 0.6, g) - 0.5)
    return c1 * (1 - t) + c2 * t + detail


def _geometric_texture(h: int, w: int, g: torch.Generator, c1: Tensor, c2: Tensor) -> Tensor:
    """The ``geometric`` family: ``c1``, ``c2`` mixed by a field of hard edges or periodic or smooth patterns.

    One of: square-wave stripes, a checkerboard, random discs, Voronoi-like cells of random grey levels,
    a smooth linear gradient, or sine stripes; random period (3-16 px), orientation and phase. None of
    them has the 1/f spectrum of the ``pink`` family, so a model trained on one and tested on the other
    must read blur, not texture statistics.
    """
    t = _geometric_field(h, w, g)
    return c1 * (1 - t) + c2 * t


def _geometric_field(h: int, w: int, g: torch.Generator) -> Tensor:
    """``(H, W)`` mixing field in [0, 1] of :func:`_geometric_texture`."""
    rnd = lambda: float(torch.rand((), generator=g))  # noqa: E731
    ys = torch.arange(h, dtype=torch.float32).view(-1, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, -1)
    theta, period, phase = math.pi * rnd(), 3.0 + 13.0 * rnd(), 2 * math.pi * rnd()
    u = math.cos(theta) * xs + math.sin(theta) * ys
    v = -math.sin(theta) * xs + math.cos(theta) * ys
    kind = int(torch.randint(0, 6, (1,), generator=g))
    if kind == 0:  # square-wave stripes
        return (torch.sin(2 * math.pi * u / period + phase) > 0).float()
    if kind == 1:  # checkerboard
        return ((torch.floor(u / period) + torch.floor(v / period)) % 2).float()
    if kind == 2:  # random discs on a plain ground
        n = int(torch.randint(8, 40, (1,), generator=g))
        cy, cx = torch.rand(n, 1, 1, generator=g) * h, torch.rand(n, 1, 1, generator=g) * w
        r = 1.5 + torch.rand(n, 1, 1, generator=g) * period
        return (((ys - cy) ** 2 + (xs - cx) ** 2) <= r**2).any(0).float()
    if kind == 3:  # cells: nearest of random seeds, each a random grey level
        n = int(torch.randint(6, 30, (1,), generator=g))
        cy, cx = torch.rand(n, 1, 1, generator=g) * h, torch.rand(n, 1, 1, generator=g) * w
        nearest = ((ys - cy) ** 2 + (xs - cx) ** 2).argmin(0)
        return torch.rand(n, generator=g)[nearest]
    if kind == 4:  # smooth gradient (nearly textureless: little blur cue, as in real walls)
        return (u - u.min()) / (u.max() - u.min()).clamp_min(1e-6)
    return 0.5 + 0.5 * torch.sin(2 * math.pi * u / period + phase)  # sine stripes


def _posterised_texture(h: int, w: int, g: torch.Generator, c1: Tensor, c2: Tensor) -> Tensor:
    """The ``posterised`` family: smooth 1/f^alpha noise (alpha in [1.5, 2.5]) quantised to 2-4 levels.

    Flat regions with irregular boundaries: textureless areas (where one image shows no blur, as inside the
    ``geometric`` family's cells, discs and squares) without that family's straight edges or periods.
    """
    alpha = 1.5 + float(torch.rand((), generator=g))
    levels = int(torch.randint(2, 5, (1,), generator=g))
    t = torch.floor(_pink_noise(h, w, alpha, g) * levels).clamp(max=levels - 1) / (levels - 1)
    return c1 * (1 - t) + c2 * t


def _mixed_texture(h: int, w: int, g: torch.Generator, c1: Tensor, c2: Tensor) -> Tensor:
    """The ``mixed`` family: each texture ``pink`` or ``posterised``, half each (a training family with
    textureless regions; still no ``geometric`` pattern)."""
    family = _posterised_texture if float(torch.rand((), generator=g)) < 0.5 else _pink_texture
    return family(h, w, g, c1, c2)


#: texture families: name -> ``f(h, w, generator, colour1, colour2) -> (3, H, W)``
TEXTURES = {
    "pink": _pink_texture,
    "geometric": _geometric_texture,
    "posterised": _posterised_texture,
    "mixed": _mixed_texture,
}


def _check_texture(texture: str) -> str:
    """``texture`` if it names a family of :data:`TEXTURES`, else a ValueError listing them."""
    if texture not in TEXTURES:
        raise ValueError(f"texture must be one of {sorted(TEXTURES)}, got {texture!r}")
    return texture


def _fork(g: torch.Generator) -> torch.Generator:
    """A generator seeded from ``g`` by one draw: what a texture consumes never shifts ``g``'s stream, so a
    seed gives the same geometry (shapes, depths) in every texture family."""
    return torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=g)))


def _texture(h: int, w: int, g: torch.Generator, flat: bool, family: str = "pink") -> Tensor:
    """``(3, H, W)`` colour texture in [0, 1]: two random colours mixed by a field of ``family``
    (:data:`TEXTURES`), or one flat colour."""
    c1, c2 = torch.rand(3, 1, 1, generator=g), torch.rand(3, 1, 1, generator=g)
    if flat:
        return c1.expand(3, h, w).clone()
    return TEXTURES[family](h, w, g, c1, c2).clamp(0, 1)


def _inverse_depth_plane(h: int, w: int, depth_m: float, slant: float, g: torch.Generator) -> Tensor:
    """``(H, W)`` depth of a plane through ``depth_m`` at the centre, tilted by ``slant`` (relative inverse depth)."""
    ys = torch.linspace(-0.5, 0.5, h).view(-1, 1)
    xs = torch.linspace(-0.5, 0.5, w).view(1, -1)
    angle = 2 * math.pi * float(torch.rand((), generator=g))
    ramp = math.cos(angle) * xs + math.sin(angle) * ys
    return 1.0 / ((1.0 / depth_m) * (1.0 + slant * ramp))


def _shape_mask(h: int, w: int, g: torch.Generator) -> Tensor:
    """``(H, W)`` bool object mask: ellipse, rectangle or smooth blob, 10-45% of the frame across."""
    kind = int(torch.randint(0, 3, (1,), generator=g))
    ys = torch.arange(h).view(-1, 1) + 0.5
    xs = torch.arange(w).view(1, -1) + 0.5
    cy, cx = (float(torch.rand((), generator=g)) * h, float(torch.rand((), generator=g)) * w)
    ry, rx = ((0.1 + 0.35 * torch.rand(2, generator=g)) * torch.tensor([h, w]) / 2).tolist()
    if kind == 0:
        return ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1
    if kind == 1:
        return ((ys - cy).abs() <= ry) & ((xs - cx).abs() <= rx)
    blob = _pink_noise(h, w, 2.5, g)
    window = torch.exp(-0.5 * (((ys - cy) / (2 * ry)) ** 2 + ((xs - cx) / (2 * rx)) ** 2))
    return blob * window > 0.35


def make_scene(
    seed: int, size: int | tuple[int, int] = 64, camera: Camera = FOD500, texture: str = "pink"
) -> dict[str, Tensor]:
    """A random scene: ``rgb`` ``(3, H, W)`` sharp colours in [0, 1] and ``depth`` ``(1, H, W)`` metres.

    ``texture``: a family of :data:`TEXTURES`. Depths and shapes depend on ``seed`` only, not on the family.
    """
    _check_texture(texture)
    h, w = (size, size) if isinstance(size, int) else size
    g = torch.Generator().manual_seed(int(seed))
    near, far = camera.depth_range_m
    focus = camera.focus_distances_m or (near, far)
    log_uniform = lambda lo, hi: math.exp(
        math.log(lo) + (math.log(hi) - math.log(lo)) * float(torch.rand((), generator=g))
    )  # noqa: E731
    # Background between the middle of the focus range and the far limit; objects spread over the range.
    bg_depth = log_uniform(max(near, focus[len(focus) // 2]), far)
    slant = 0.6 * float(torch.rand((), generator=g)) if float(torch.rand((), generator=g)) < 0.6 else 0.0
    depth = _inverse_depth_plane(h, w, bg_depth, slant, g)
    rgb = _texture(h, w, _fork(g), flat=False, family=texture)
    objects = int(torch.randint(1, 5, (1,), generator=g))
    obj_depths = sorted((log_uniform(near * 1.05, bg_depth * 0.9) for _ in range(objects)), reverse=True)
    for z in obj_depths:  # far to near: nearer objects are painted over farther ones
        mask = _shape_mask(h, w, g)
        obj_slant = 0.3 * float(torch.rand((), generator=g)) if float(torch.rand((), generator=g)) < 0.4 else 0.0
        flat = float(torch.rand((), generator=g)) < 0.1
        depth = torch.where(mask, _inverse_depth_plane(h, w, z, obj_slant, g), depth)
        rgb = torch.where(mask, _texture(h, w, _fork(g), flat=flat, family=texture), rgb)
    depth = depth.clamp(near, far)
    return {"rgb": rgb, "depth": depth[None]}


def scene_camera(camera: Camera, size: int | tuple[int, int]) -> Camera:
    """Camera of a centre crop of ``camera``'s sensor at the same pixel pitch."""
    h, w = (size, size) if isinstance(size, int) else size
    return replace(camera, width_px=w, height_px=h, cx_px=None, cy_px=None)


def render_scene(seed: int, size: int | tuple[int, int], camera: Camera, num_layers: int = 32, texture: str = "pink"):
    """Scene + focal stack quantised to 8 bits: ``(stack (S, 3, H, W), depth (1, H, W), camera)``."""
    cam = scene_camera(camera, size)
    scene = make_scene(seed, size, cam, texture)
    focus = torch.tensor(cam.focus_distances_m)
    stack = synthesize_focal_stack(scene["rgb"][None], scene["depth"][None], focus, cam, num_layers=num_layers)[0]
    return torch.round(stack * 255) / 255, scene["depth"], cam


class ProceduralDataset(StackDataset):
    """In-memory procedural focal stacks, generated lazily per worker and cached.

    Args:
        num_scenes: samples in the split.
        size: image size (px), a centre crop of the camera's sensor.
        seed: base seed; scene i uses ``seed + i``.
        camera: optics (default FoD500).
    """

    def __init__(
        self, num_scenes: int, size: int = 64, seed: int = 0, camera: Camera = FOD500, texture: str = "pink", **kw
    ) -> None:
        super().__init__(**kw)
        self.num_scenes, self.size, self.seed, self.camera = num_scenes, size, seed, camera
        self.texture = texture
        self._cache: dict[int, dict[str, Tensor]] = {}

    def __len__(self) -> int:
        return self.num_scenes

    def describe(self, i: int) -> str:
        return f"procedural scene seed {self.seed + i} ({self.texture} textures)"

    def load(self, i: int) -> dict[str, Tensor]:
        if i not in self._cache:
            stack, depth, cam = render_scene(self.seed + i, self.size, self.camera, texture=self.texture)
            self._cache[i] = make_item(stack, cam.focus_distances_m, depth, cam, i)
        return self._cache[i]


class SyntheticDataModule(FocalStackDataModule):
    """The embedded default data: procedural scenes rendered with the FoD500 optics (or another preset).

    Args:
        num_train, num_val, num_test: scenes per split (disjoint seed streams).
        size: image size (px): a centre crop of the sensor, same pixel pitch.
        seed: base seed of the generator.
        camera: optics preset name or camera JSON.
        texture: texture family of every split (:data:`TEXTURES`): ``pink``, ``geometric``, ``posterised`` or
            ``mixed``. A seed gives the same geometry in every family, so
            ``sdgs test --data.init_args.texture=geometric`` tests a model trained on ``pink`` on the same
            held-out scenes with textures it never saw.
        data_dir: if set, the scenes are written there once in FoD500 format (``sdgs synth``) and read back
            through the FoD500 loader; otherwise they live in memory.
        **kwargs: :class:`~datamodules.base.FocalStackDataModule` options.
    """

    def __init__(
        self,
        num_train: int = 256,
        num_val: int = 16,
        num_test: int = 32,
        size: int = 64,
        seed: int = 0,
        camera: str = "fod500",
        texture: str = "pink",
        data_dir: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.num_train, self.num_val, self.num_test = num_train, num_val, num_test
        self.size, self.seed, self.data_dir = size, seed, data_dir
        self.texture = _check_texture(texture)  # at configuration time, not at the first lazily made scene
        self._camera = get_camera(camera)

    @property
    def camera(self) -> Camera:
        return scene_camera(self._camera, self.size)

    @property
    def identity(self) -> str:
        return f"procedural:{self._camera.name}:size{self.size}:seed{self.seed}:{self.texture}"

    def build_datasets(self) -> dict[str, StackDataset]:
        counts = {"train": self.num_train, "val": self.num_val, "test": self.num_test}
        out = {}
        for split, n in counts.items():
            crop = self.crop_size if split == "train" else self.eval_crop_size
            kw = {"crop_size": crop, "augment": split == "train", "skip_bad": self.skip_bad}
            seed = self.seed + SPLIT_OFFSETS[split]
            if self.data_dir is None:
                out[split] = ProceduralDataset(n, self.size, seed, self._camera, self.texture, **kw)
            else:
                from datamodules.fod500 import FoD500Dataset

                folder = Path(self.data_dir) / split
                # resumes a set of the same settings (its manifest) and rewrites one of other settings
                write_procedural_dataset(
                    folder, n, self.size, seed, self._camera, force=True, progress=False, texture=self.texture
                )
                out[split] = FoD500Dataset(folder, list(range(n)), self.camera, **kw)
        return out


def write_procedural_dataset(
    out: str | Path,
    scenes: int,
    size: int = 64,
    seed: int = 0,
    camera: Camera = FOD500,
    *,
    force: bool = False,
    progress: bool = True,
    texture: str = "pink",
) -> Path:
    """Write ``scenes`` procedural scenes to ``out`` in FoD500 format (resumable: finished scenes are kept).

    Refuses a non-empty folder that is not a procedural set of the same settings unless ``force``; with
    ``force`` it deletes only the dataset's own files (FoD500 images and depth, leftover temporary copies
    of them, the ``procedural.json`` manifest) and refuses, listing them, if anything else is there.
    """
    from tqdm.auto import tqdm

    from datamodules.fod500 import depth_path, fod500_indices, write_fod500_sample

    out = Path(out)
    marker = out / MANIFEST
    settings = {"seed": seed, "size": size, "camera": camera.name, "texture": texture}
    import json

    if out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file: --out must be a folder")
    if out.exists() and any(out.iterdir()):
        same = marker.is_file() and json.loads(marker.read_text()) == settings
        if not same and not force:
            raise DataError(f"{out} is not empty: choose another --out or pass --force to overwrite it")
        if not same:
            entries = sorted(out.iterdir())
            foreign = [p.name + "/" * p.is_dir() for p in entries if not (p.is_file() and _DATASET_FILE.match(p.name))]
            if foreign:
                listed = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
                raise DataError(
                    f"{out} holds files that are not part of a dataset ({listed}); --force deletes only dataset "
                    "files: move those away or choose another --out"
                )
            for path in entries:
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(settings))
    done = set(fod500_indices(out))
    for i in tqdm(range(scenes), desc=f"synth {out.name}", disable=not progress, unit="scene"):
        if i in done and depth_path(out, i).is_file():
            continue
        stack, depth, _ = render_scene(seed + i, size, camera, texture=texture)
        write_fod500_sample(out, i, stack.permute(0, 2, 3, 1).numpy(), depth[0].numpy())
    return out
