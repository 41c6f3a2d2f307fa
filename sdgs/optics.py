"""Thin-lens camera model: circle of confusion (CoC) from depth, focus distance and lens.

Units are in the names: ``*_m`` metres, ``*_px`` pixels. Every function is tensor-first, broadcasts
like ``torch`` arithmetic, is differentiable and works in float32 and float64.

Signed CoC diameter on the sensor, in pixels (docs/method.md, "Thin-lens model")::

    s(z; d) = A f (z - d) / (z (d - f) p),     A = f / N

positive behind the focus plane. Its inverse is affine in inverse depth::

    1/z = (1 - s p (d - f) / (A f)) / d

A :class:`Camera` holds scalar floats (presets, user cameras) or tensors of shape ``(B, 1, ..., 1)``
so the same functions serve a whole batch. :func:`batched_camera` is the one way to get a camera shaped for
the tensors it meets: from a batch's ``camera`` dict, a preset name, or a camera of another rank.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "SIGMA_PER_COC",
    "batched_camera",
    "Camera",
    "FOD500",
    "NYUV2",
    "D3NET",
    "DFD_INDOOR",
    "PRESETS",
    "get_camera",
    "check_focus",
    "signed_coc_px",
    "signed_coc_from_inverse_depth",
    "coc_px",
    "lens_gain_px",
    "depth_from_signed_coc",
    "inverse_depth_from_signed_coc",
    "coc_to_sigma_px",
    "gaussian_psf_blur",
    "normalized_log_inverse_depth",
    "bounded_inverse_depth",
    "inverse_depth_logit",
]

#: Gaussian PSF width per CoC diameter. sigma = c / 4 matches the second moment of a uniform disc of
#: diameter c (per-axis variance (c/2)^2 / 4). Peers differ: Gur & Wolf / DEReD use c/2 (radius),
#: D3-Net and camind 0.3 c, playcanvas c. Keep it the one named constant; renderers take it as an
#: argument so sweeps can vary it.
SIGMA_PER_COC: float = 0.25

Scalar = float | Tensor


@dataclass(frozen=True)
class Camera:
    """Thin-lens camera with optional pinhole intrinsics.

    Args:
        focal_length_m: lens focal length f (m).
        f_number: N; aperture diameter A = f / N.
        pixel_size_m: pixel pitch p (m) of the images this camera describes.
        width_px, height_px: image size in pixels.
        fx_px, fy_px, cx_px, cy_px: pinhole intrinsics in pixels, gsplat convention (pixel centres at
            +0.5, so ``cx = W / 2`` is the image centre). ``None`` derives them from the lens:
            ``fx = fy = f / p`` and the image centre.
        focus_distances_m: the dataset's default focal stack (m), near to far.
        depth_range_m: (near, far) depth the dataset holds (m); bounds network outputs and fits.
        name: preset name, for logs and cache keys.
    """

    focal_length_m: Scalar
    f_number: Scalar
    pixel_size_m: Scalar
    width_px: int
    height_px: int
    fx_px: Scalar | None = None
    fy_px: Scalar | None = None
    cx_px: Scalar | None = None
    cy_px: Scalar | None = None
    focus_distances_m: tuple[float, ...] = field(default_factory=tuple)
    depth_range_m: tuple[float, float] = (0.1, 10.0)
    name: str = "custom"

    def __post_init__(self) -> None:
        for key in ("focal_length_m", "f_number", "pixel_size_m"):
            value = getattr(self, key)
            bad = (value <= 0).any().item() if isinstance(value, Tensor) else not value > 0
            if bad:
                raise ValueError(f"Camera.{key} must be > 0, got {value!r}")
        if self.width_px <= 0 or self.height_px <= 0:
            raise ValueError(f"Camera image size must be positive, got {self.width_px}x{self.height_px}")
        near, far = self.depth_range_m
        if not 0 < near < far:
            raise ValueError(f"Camera.depth_range_m must satisfy 0 < near < far, got {self.depth_range_m}")
        for d in self.focus_distances_m:
            if not isinstance(self.focal_length_m, Tensor) and d <= self.focal_length_m:
                raise ValueError(f"focus distance {d} m must exceed the focal length {self.focal_length_m} m")

    # ------------------------------------------------------------------ derived quantities
    @property
    def aperture_m(self) -> Scalar:
        """Aperture diameter A = f / N (m)."""
        return self.focal_length_m / self.f_number

    @property
    def intrinsics_px(self) -> tuple[Scalar, Scalar, Scalar, Scalar]:
        """(fx, fy, cx, cy) in pixels, gsplat convention (pixel centres at +0.5)."""
        f_px = self.focal_length_m / self.pixel_size_m
        fx = f_px if self.fx_px is None else self.fx_px
        fy = f_px if self.fy_px is None else self.fy_px
        cx = self.width_px / 2.0 if self.cx_px is None else self.cx_px
        cy = self.height_px / 2.0 if self.cy_px is None else self.cy_px
        return fx, fy, cx, cy

    def K(self, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
        """Pinhole intrinsics matrix ``(3, 3)`` (or ``(B, 3, 3)`` for a batched camera), pixels."""
        fx, fy, cx, cy = (torch.as_tensor(v, dtype=dtype, device=device) for v in self.intrinsics_px)
        shape = torch.broadcast_shapes(fx.shape, fy.shape, cx.shape, cy.shape)
        fx, fy, cx, cy = (v.expand(shape).reshape(-1) for v in (fx, fy, cx, cy))
        zero, one = torch.zeros_like(fx), torch.ones_like(fx)
        k = torch.stack([fx, zero, cx, zero, fy, cy, zero, zero, one], -1).reshape(-1, 3, 3)
        return k[0] if len(shape) == 0 else k

    # ------------------------------------------------------------------ geometry edits
    def crop(self, top: int, left: int, height: int, width: int) -> Camera:
        """The camera of a crop: same pixel pitch (so CoC sizes in pixels are unchanged), shifted centre."""
        fx, fy, cx, cy = self.intrinsics_px
        return replace(self, width_px=width, height_px=height, fx_px=fx, fy_px=fy, cx_px=cx - left, cy_px=cy - top)

    def resize(self, height: int, width: int) -> Camera:
        """The camera of a resized image: pixel pitch and intrinsics scale with the image."""
        sx, sy = width / self.width_px, height / self.height_px
        fx, fy, cx, cy = self.intrinsics_px
        return replace(
            self,
            width_px=width,
            height_px=height,
            pixel_size_m=self.pixel_size_m / sx,
            fx_px=fx * sx,
            fy_px=fy * sy,
            cx_px=cx * sx,
            cy_px=cy * sy,
        )

    # ------------------------------------------------------------------ batch (de)serialisation
    def to_tensors(self) -> dict[str, Tensor]:
        """The batch-dict form (``batch["camera"]``): float32 scalars that default collation stacks to ``(B,)``."""
        fx, fy, cx, cy = self.intrinsics_px
        values = {
            "focal_length_m": self.focal_length_m,
            "f_number": self.f_number,
            "pixel_size_m": self.pixel_size_m,
            "fx_px": fx,
            "fy_px": fy,
            "cx_px": cx,
            "cy_px": cy,
            "depth_near_m": self.depth_range_m[0],
            "depth_far_m": self.depth_range_m[1],
        }
        out = {k: torch.as_tensor(v, dtype=torch.float64).float() for k, v in values.items()}
        out["width_px"] = torch.tensor(self.width_px)
        out["height_px"] = torch.tensor(self.height_px)
        return out

    @classmethod
    def from_batch(cls, cam: dict[str, Tensor], ndim: int = 4) -> Camera:
        """Batched camera from ``batch["camera"]`` (values ``(B,)``) with fields shaped ``(B, 1, ..., 1)``.

        ``ndim`` is the rank of the tensors the camera will broadcast against, e.g. 4 for ``(B, 1, H, W)``
        depth maps or 5 for ``(B, S, 1, H, W)`` stacks.
        """
        if "focal_length_m" not in cam:
            raise KeyError("batch['camera'] lacks 'focal_length_m': build it with Camera.to_tensors()")
        b = cam["focal_length_m"].reshape(-1).shape[0]
        view = (b,) + (1,) * (ndim - 1)
        f = lambda k: cam[k].reshape(view)  # noqa: E731
        near = float(cam["depth_near_m"].reshape(-1)[0])
        far = float(cam["depth_far_m"].reshape(-1)[0])
        return cls(
            focal_length_m=f("focal_length_m"),
            f_number=f("f_number"),
            pixel_size_m=f("pixel_size_m"),
            width_px=int(cam["width_px"].reshape(-1)[0]),
            height_px=int(cam["height_px"].reshape(-1)[0]),
            fx_px=f("fx_px"),
            fy_px=f("fy_px"),
            cx_px=f("cx_px"),
            cy_px=f("cy_px"),
            depth_range_m=(near, far),
            name="batch",
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable dict (scalar cameras only)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any] | str | Path) -> Camera:
        """Camera from a dict or a JSON file with the field names of this class."""
        if not isinstance(data, dict):
            path = Path(data)
            try:
                data = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as err:
                raise ValueError(f"cannot read camera JSON {path}: {err}") from err
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown camera fields {sorted(unknown)}; known: {sorted(known)}")
        data = dict(data)
        for key in ("focus_distances_m", "depth_range_m"):
            if key in data:
                data[key] = tuple(float(v) for v in data[key])
        return cls(**data)

    def cache_key(self) -> str:
        """Stable string identifying the optics (scalar cameras)."""
        return json.dumps(self.to_json(), sort_keys=True)


#: FoD500 / DefocusNet Blender camera: f = 2.9 mm, N = 1, 3.1 mm sensor over 256 px (docs/protocols.md,
#: "Camera presets").
FOD500 = Camera(
    focal_length_m=2.9e-3,
    f_number=1.0,
    pixel_size_m=3.0999999046325684e-3 / 256,
    width_px=256,
    height_px=256,
    focus_distances_m=(0.1, 0.15, 0.3, 0.7, 1.5),
    depth_range_m=(0.1, 3.0),
    name="fod500",
)

#: NYUv2 synthetic defocus with DEReD optics: f = 50 mm, N = 8, p = 12 um at 320x240 (docs/protocols.md,
#: "Camera presets").
#: The pinhole intrinsics are the Kinect RGB camera's (NYU toolbox camera_params.m) at half resolution;
#: the lens is a synthetic one, so f / p differs from fx on purpose.
NYUV2 = Camera(
    focal_length_m=50e-3,
    f_number=8.0,
    pixel_size_m=12e-6,
    width_px=320,
    height_px=240,
    fx_px=518.8579 / 2,
    fy_px=519.4696 / 2,
    cx_px=325.5824 / 2,
    cy_px=253.7362 / 2,
    focus_distances_m=(1.0, 1.5, 2.5, 4.0, 6.0),
    depth_range_m=(0.1, 10.0),
    name="nyuv2",
)

#: D3-Net layered NYUv2 synthesis (marcelampc/d3net_depth_estimation parameters_blurred_NYUv2.m):
#: f = 15 mm, N = 2.8, p = 2.8 um x 2 at 640x480, one focus of {2, 4, 8} m per dataset. D3-Net uses
#: sigma = 0.3 CoC; pass ``sigma_per_coc=0.3`` to the synthesis to reproduce it.
D3NET = Camera(
    focal_length_m=15e-3,
    f_number=2.8,
    pixel_size_m=5.6e-6,
    width_px=640,
    height_px=480,
    fx_px=518.8579,
    fy_px=519.4696,
    cx_px=325.5824,
    cy_px=253.7362,
    focus_distances_m=(2.0, 4.0, 8.0),
    depth_range_m=(0.1, 10.0),
    name="d3net",
)

#: D3-Net's real DSLR indoor set (Carvalho et al. 2018, the authors' parameter file): f = 35 mm, focus
#: 1.7 m, 6 um sensor pixels subsampled x6 -> 36 um at 645x432. N = 2.8 (real defocus); the f/8 images
#: of the same scenes use ``replace(DFD_INDOOR, f_number=8.0)``. Depth 0.3-6.5 m (structured light).
DFD_INDOOR = Camera(
    focal_length_m=35e-3,
    f_number=2.8,
    pixel_size_m=36e-6,
    width_px=645,
    height_px=432,
    focus_distances_m=(1.7,),
    depth_range_m=(0.2, 10.0),
    name="dfd_indoor",
)

PRESETS: dict[str, Camera] = {"fod500": FOD500, "nyuv2": NYUV2, "d3net": D3NET, "dfd_indoor": DFD_INDOOR}


def get_camera(spec: str | Path | Camera) -> Camera:
    """A preset by name (``fod500``, ``nyuv2``, ``d3net``, ``dfd_indoor``), a JSON file path, or a Camera as is."""
    if isinstance(spec, Camera):
        return spec
    key = str(spec).lower()
    if key in PRESETS:
        return PRESETS[key]
    if Path(spec).suffix == ".json":
        return Camera.from_json(spec)
    raise ValueError(f"unknown camera {spec!r}: use one of {sorted(PRESETS)} or a path to a camera .json")


# ---------------------------------------------------------------------------------------------------
# Thin-lens functions
# ---------------------------------------------------------------------------------------------------
_BATCHED_FIELDS = ("focal_length_m", "f_number", "pixel_size_m", "fx_px", "fy_px", "cx_px", "cy_px")


def batched_camera(
    camera: Camera | dict[str, Tensor] | str, ndim: int, batch: int | None = None, size: tuple[int, int] | None = None
) -> Camera:
    """A camera whose tensor fields are shaped ``(B,) + (1,) * (ndim - 1)``, to broadcast against rank-``ndim``
    tensors (4 for ``(B, 1, H, W)`` depth, 5 for ``(B, S, 1, H, W)`` stacks).

    Args:
        camera: a batch's ``camera`` dict (:meth:`Camera.to_tensors` values stacked to ``(B,)``), a
            :class:`Camera` (scalar, or batched at any rank), or a preset name / JSON path.
        ndim: rank of the tensors the camera meets.
        batch: B for a camera with per-sample fields given as one value each (expanded); default: inferred.
        size: ``(H, W)`` of the images. A scalar camera without an explicit principal point is then
            centred on them (a centre crop of its sensor at the same pixel pitch).
    """
    if isinstance(camera, dict):
        return Camera.from_batch(camera, ndim)
    camera = get_camera(camera)
    if size is not None and camera.cx_px is None and camera.cy_px is None:
        h, w = size
        if (camera.height_px, camera.width_px) != (h, w):
            camera = replace(camera, width_px=w, height_px=h)
    tensors = {k: v for k in _BATCHED_FIELDS if isinstance(v := getattr(camera, k), Tensor)}
    if not tensors:
        return camera
    b = batch if batch is not None else max(v.numel() for v in tensors.values())
    view = (b,) + (1,) * (ndim - 1)
    return replace(camera, **{k: v.reshape(-1).expand(b).reshape(view) for k, v in tensors.items()})


def _check_positive(name: str, value: Scalar) -> None:
    if isinstance(value, Tensor):
        if not torch.isfinite(value).all() or (value <= 0).any():
            bad = value[~torch.isfinite(value) | (value <= 0)].flatten()[:3].tolist()
            raise ValueError(f"{name} must be finite and > 0; got values such as {bad}")
    elif not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")


def check_focus(focus_distance_m: Scalar, camera: Camera) -> None:
    """Raise ValueError unless every focus distance (m) is finite and beyond the focal length."""
    _check_positive("focus distance (m)", focus_distance_m)
    gap = focus_distance_m - camera.focal_length_m
    if (gap <= 0).any() if isinstance(gap, Tensor) else gap <= 0:
        raise ValueError(
            f"focus distance {focus_distance_m!r} m must exceed the focal length {camera.focal_length_m!r} m"
        )


def lens_gain_px(focus_distance_m: Scalar, camera: Camera) -> Scalar:
    """Lens gain ``A f / ((d - f) p)`` (px): the signed CoC per unit of ``1 - d/z``.

    ``s = gain (1 - d / z)``, so ``|ds / d(1/z)| = gain * d`` (px m): how much blur one unit of inverse
    depth buys at focus distance ``d``. Broadcasts like the other thin-lens functions.
    """
    check_focus(focus_distance_m, camera)
    f = camera.focal_length_m
    return camera.aperture_m * f / ((focus_distance_m - f) * camera.pixel_size_m)


def signed_coc_px(depth_m: Tensor, focus_distance_m: Scalar, camera: Camera) -> Tensor:
    """Signed CoC diameter in pixels, positive behind the focus plane.

    Args:
        depth_m: depth z (m), any shape, e.g. ``(B, 1, H, W)``; must be > 0.
        focus_distance_m: focus distance d (m), broadcastable to ``depth_m`` (e.g. ``(B, 1, 1, 1)``).
        camera: lens; its fields broadcast too.

    Returns:
        ``A f (z - d) / (z (d - f) p)`` with the broadcast shape.
    """
    _check_positive("depth (m)", depth_m)
    return lens_gain_px(focus_distance_m, camera) * (1.0 - focus_distance_m / depth_m)


def signed_coc_from_inverse_depth(inverse_depth: Tensor, focus_distance_m: Scalar, camera: Camera) -> Tensor:
    """Signed CoC (px) from inverse depth (1/m): ``gain (1 - d / z)``, affine in ``1/z``.

    The form networks use: no division, so a bounded inverse depth gives a bounded CoC (and a
    non-finite network output reaches the loss, whose check names it, instead of failing here).
    """
    return lens_gain_px(focus_distance_m, camera) * (1.0 - focus_distance_m * inverse_depth)


def coc_px(depth_m: Tensor, focus_distance_m: Scalar, camera: Camera) -> Tensor:
    """Unsigned CoC diameter in pixels, ``|signed_coc_px|`` (what a blurred image shows)."""
    return signed_coc_px(depth_m, focus_distance_m, camera).abs()


def inverse_depth_from_signed_coc(signed_coc: Tensor, focus_distance_m: Scalar, camera: Camera) -> Tensor:
    """Inverse depth (1/m) from a signed CoC (px): ``(1 - s / gain) / d``, affine in ``s``.

    Values beyond the CoC of infinity give non-positive inverse depth; callers that need a depth use
    :func:`depth_from_signed_coc`, which refuses them.
    """
    return (1.0 - signed_coc / lens_gain_px(focus_distance_m, camera)) / focus_distance_m


def depth_from_signed_coc(signed_coc: Tensor, focus_distance_m: Scalar, camera: Camera) -> Tensor:
    """Depth (m) from a signed CoC (px); exact inverse of :func:`signed_coc_px`.

    Raises:
        ValueError: where the CoC lies beyond the CoC of a point at infinity (no finite depth).
    """
    inv = inverse_depth_from_signed_coc(signed_coc, focus_distance_m, camera)
    if (inv <= 0).any():
        raise ValueError(
            "signed CoC beyond the CoC of infinity (no finite depth); bound the prediction, e.g. through "
            "a bounded inverse depth as sdgs.models.SDNet does"
        )
    return 1.0 / inv


def normalized_log_inverse_depth(inverse_depth: Tensor, near_m: float, far_m: float) -> Tensor:
    """Log inverse depth mapped to [0, 1] over a depth range: 0 at ``far_m``, 1 at ``near_m``."""
    lo, hi = math.log(1.0 / far_m), math.log(1.0 / near_m)
    return (inverse_depth.log() - lo) / (hi - lo)


def bounded_inverse_depth(logit: Tensor, near_m: float, far_m: float) -> Tensor:
    """Inverse depth (1/m) in ``[1/far, 1/near]`` from an unbounded logit, uniform in log inverse depth.

    The one parameterisation of bounded depth: networks' outputs and the splatting fit both use it, so
    depth can never leave the range the renderer and the dataset use.
    """
    lo, hi = math.log(1.0 / far_m), math.log(1.0 / near_m)
    return torch.exp(lo + (hi - lo) * torch.sigmoid(logit))


def inverse_depth_logit(inverse_depth: Tensor, near_m: float, far_m: float, eps: float = 1e-4) -> Tensor:
    """Inverse of :func:`bounded_inverse_depth`; values beyond the range are clamped ``eps`` inside it."""
    frac = normalized_log_inverse_depth(inverse_depth, near_m, far_m).clamp(eps, 1 - eps)
    return torch.log(frac / (1 - frac))


def coc_to_sigma_px(coc: Tensor | float, sigma_per_coc: float = SIGMA_PER_COC) -> Tensor | float:
    """Gaussian PSF standard deviation (px) of a CoC diameter (px): ``sigma = sigma_per_coc * |c|``."""
    return sigma_per_coc * (coc.abs() if isinstance(coc, Tensor) else abs(coc))


def gaussian_psf_blur(image: Tensor, sigma_px: float | Tensor, border_type: str = "reflect") -> Tensor:
    """``image`` ``(N, C, H, W)`` blurred by a Gaussian PSF of ``sigma_px`` (px): one float, or ``(N,)``, one per image.

    The one Gaussian blur of the repo (kornia's ``gaussian_blur2d``): its kernel spans ``±ceil(3 σ)`` px of the
    largest σ (at least 3 taps), so every caller cuts the PSF at the same 3 σ. σ is clamped to 1e-3 px (σ = 0
    is the identity up to float rounding).
    """
    import kornia

    sigma = torch.as_tensor(sigma_px, dtype=image.dtype, device=image.device).clamp_min(1e-3)
    if sigma.ndim == 0:
        sigma = sigma.expand(image.shape[0])
    if sigma.shape != (image.shape[0],):
        raise ValueError(f"sigma_px: one float or one value per image ({image.shape[0]},), got {tuple(sigma.shape)}")
    r = max(1, math.ceil(3 * float(sigma.max())))
    return kornia.filters.gaussian_blur2d(
        image, (2 * r + 1,) * 2, sigma[:, None].expand(-1, 2).contiguous(), border_type=border_type
    )
