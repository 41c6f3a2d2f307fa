"""Thin-lens defocus rendering with one 3D Gaussian per pixel.

Each pixel becomes a Gaussian at its unprojected centre (camera frame = world frame) with an isotropic
3D covariance that projects to a footprint of :data:`FOOTPRINT_SIGMA_PX` on the axis. Projection gives
its 2D covariance, the thin lens its CoC at each focus distance, and the covariance is inflated by the
PSF variance ``coc_to_sigma_px(c)^2 I`` less the footprint's share (:func:`footprint_compensated_variance`:
the data already hold the pixel integration), with a normalised kernel so energy is kept. The depth-layered rasterizer
(:mod:`sdgs.render.rasterize`) composites the result.

A focal stack of S focus distances is rendered from one projection: only the CoC inflation is repeated.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sdgs.optics import SIGMA_PER_COC, Camera, batched_camera, coc_to_sigma_px, get_camera, signed_coc_px
from sdgs.render.rasterize import (
    Backend,
    full_precision,
    layer_ids_from_depths,
    rasterize_gaussians,
    resolve_backend,
)

__all__ = ["FOOTPRINT_SIGMA_PX", "render_defocus", "project_gaussians", "pixel_gaussians", "DefocusRenderer"]

#: Standard deviation (px) of a pixel's own Gaussian: 1/sqrt(12), the second moment of a one-pixel box.
#: With the 3-sigma support a zero-CoC render reproduces the input exactly.
FOOTPRINT_SIGMA_PX: float = 12**-0.5


def footprint_compensated_variance(sigma2_psf: Tensor, footprint_px: float) -> Tensor:
    """Variance (px^2) to add to a pixel Gaussian so the total blur is the PSF's, not PSF + footprint.

    The radiance is already a pixel-sampled image (its pixel integration is in the data), so the
    footprint must not blur it again: the added variance is ``sigma^2 - f^2 (1 - exp(-sigma^2 / f^2))``,
    making the total ``sigma^2 + f^2 exp(-sigma^2 / f^2)``: the footprint ``f^2`` at zero CoC (coverage),
    the PSF's ``sigma^2`` once the blur exceeds a pixel; smooth and monotone in between.
    """
    f2 = footprint_px**2
    return sigma2_psf - f2 * (1.0 - torch.exp(-sigma2_psf / f2))


def pixel_gaussians(depth_m: Tensor, K: Tensor, footprint_px: float = FOOTPRINT_SIGMA_PX) -> tuple[Tensor, Tensor]:
    """One 3D Gaussian per pixel: unprojected pixel centres and isotropic covariances.

    Args:
        depth_m: ``(B, 1, H, W)`` depth (m).
        K: ``(B, 3, 3)`` or ``(3, 3)`` intrinsics (px, centres at +0.5).
        footprint_px: on-axis projected standard deviation (px).

    Returns:
        ``means3d`` ``(B, N, 3)`` (m, camera frame, N = H W) and ``covars3d`` ``(B, N, 3, 3)`` (m^2).
    """
    b, _, h, w = depth_m.shape
    K = K.to(depth_m).expand(b, 3, 3)
    fx, fy, cx, cy = K[:, 0, 0, None], K[:, 1, 1, None], K[:, 0, 2, None], K[:, 1, 2, None]
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=depth_m.dtype, device=depth_m.device) + 0.5,
        torch.arange(w, dtype=depth_m.dtype, device=depth_m.device) + 0.5,
        indexing="ij",
    )
    z = depth_m.reshape(b, -1)
    x = (xs.reshape(1, -1) - cx) / fx * z
    y = (ys.reshape(1, -1) - cy) / fy * z
    means3d = torch.stack([x, y, z], -1)
    std = footprint_px * z / fx
    eye = torch.eye(3, dtype=depth_m.dtype, device=depth_m.device)
    return means3d, (std * std)[..., None, None] * eye


def project_gaussians(means3d: Tensor, covars3d: Tensor, K: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Pinhole EWA projection (gsplat's ``persp_proj`` without its FOV clamp), camera frame = world frame.

    Args:
        means3d: ``(B, N, 3)`` (m). covars3d: ``(B, N, 3, 3)`` (m^2). K: ``(B, 3, 3)`` (px).

    Returns:
        ``means2d`` ``(B, N, 2)`` (px), ``covars2d`` ``(B, N, 2, 2)`` (px^2) = J Sigma J^T, ``depths`` ``(B, N)`` (m).
    """
    K = K.to(means3d).expand(means3d.shape[0], 3, 3)
    fx, fy, cx, cy = (K[:, 0, 0, None], K[:, 1, 1, None], K[:, 0, 2, None], K[:, 1, 2, None])
    x, y, z = means3d.unbind(-1)
    zero = torch.zeros_like(z)
    J = torch.stack(
        [torch.stack([fx / z, zero, -fx * x / z**2], -1), torch.stack([zero, fy / z, -fy * y / z**2], -1)], -2
    )
    covars2d = J @ covars3d @ J.transpose(-1, -2)
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], -1)
    return means2d, covars2d, z


def _project_gsplat(means3d: Tensor, covars3d: Tensor, K: Tensor, width: int, height: int):
    """gsplat's CUDA projection; returns the same as :func:`project_gaussians` plus a validity mask."""
    from gsplat.cuda._wrapper import fully_fused_projection

    b, n = means3d.shape[:2]
    tri = covars3d[..., [0, 0, 0, 1, 1, 2], [0, 1, 2, 1, 2, 2]].float().contiguous()
    viewmats = torch.eye(4, device=means3d.device).expand(b, 1, 4, 4).contiguous()
    Ks = K.float().expand(b, 3, 3)[:, None].contiguous()
    radii, means2d, depths, conics, _ = fully_fused_projection(
        means3d.float().contiguous(),
        tri,
        None,
        None,
        viewmats,
        Ks,
        width,
        height,
        eps2d=0.0,
        near_plane=1e-4,
        packed=False,
    )
    valid = (radii[:, 0] > 0).all(-1)  # (B,N); culled outputs are uninitialised
    a, bb, c = conics[:, 0].unbind(-1)
    det = a * c - bb * bb
    cov = torch.stack([torch.stack([c, -bb], -1), torch.stack([-bb, a], -1)], -2) / det[..., None, None]
    eye = torch.eye(2, device=means3d.device)
    cov = torch.where(valid[..., None, None], cov, eye)
    means2d = torch.where(valid[..., None], means2d[:, 0], torch.zeros_like(means2d[:, 0]))
    depths = torch.where(valid, depths[:, 0], torch.ones_like(depths[:, 0]))
    return means2d.to(means3d.dtype), cov.to(means3d.dtype), depths.to(means3d.dtype), valid


@full_precision
def render_defocus(
    radiance: Tensor,
    depth: Tensor,
    focus_distance: Tensor,
    camera: Camera | dict | str,
    *,
    backend: Backend = "auto",
    coc_px: Tensor | None = None,
    opacity: Tensor | None = None,
    num_layers: int = 32,
    sigma_per_coc: float = SIGMA_PER_COC,
    footprint_px: float = FOOTPRINT_SIGMA_PX,
    support: float = 3.0,
) -> dict[str, Tensor]:
    """Render defocused image(s) from sharp radiance and depth with one Gaussian per pixel.

    Args:
        radiance: ``(B, 3, H, W)`` sharp colours.
        depth: ``(B, 1, H, W)`` depth (m), finite and > 0.
        focus_distance: ``(B,)`` (one image each) or ``(B, S)`` (a focal stack) focus distances (m).
        camera: a :class:`~sdgs.optics.Camera`, a preset name, or ``batch["camera"]``.
        backend: ``"torch"``, ``"gsplat"`` (CUDA), ``"triton"`` (CUDA; CPU under Triton's interpreter) or
            ``"auto"`` (triton on CUDA when it imports, else torch).
        coc_px: optional CoC diameters (px) to use instead of the thin lens at ``depth``:
            ``(B, 1, H, W)`` or ``(B, S, 1, H, W)``; the sign is ignored (e.g. SDNet's signed CoC).
        opacity: optional ``(B, 1, H, W)`` per-Gaussian weight in [0, 1] (default 1).
        num_layers: K depth layers of the compositing.
        sigma_per_coc: PSF sigma per CoC diameter.
        footprint_px: sigma (px) of each pixel's own Gaussian.
        support: kernel cut-off in standard deviations.

    Returns:
        dict with ``image`` ``(B, 3, H, W)`` (or ``(B, S, 3, H, W)``), ``alpha`` and ``depth``
        ``(B, 1, H, W)`` (or ``(B, S, 1, H, W)``): coverage and coverage-normalised composited depth.
        Always at least float32: under autocast (bf16 networks) the renderer runs in fp32
        (:func:`~sdgs.render.rasterize.full_precision`).
    """
    if radiance.ndim != 4 or radiance.shape[1] != 3:
        raise ValueError(f"radiance must be (B, 3, H, W), got {tuple(radiance.shape)}")
    b, _, h, w = radiance.shape
    if depth.shape != (b, 1, h, w):
        raise ValueError(f"depth must be (B, 1, H, W) = {(b, 1, h, w)}, got {tuple(depth.shape)}")
    if not torch.isfinite(depth).all() or (depth <= 0).any():
        raise ValueError("depth must be finite and > 0 everywhere")
    focus = torch.as_tensor(focus_distance, dtype=radiance.dtype, device=radiance.device)
    stacked = focus.ndim == 2
    focus = focus.reshape(b, -1) if focus.numel() % b == 0 and focus.ndim in (1, 2) else focus
    if focus.ndim != 2 or focus.shape[0] != b:
        raise ValueError(f"focus_distance must be (B,) or (B, S) with B = {b}, got {tuple(focus_distance.shape)}")
    s = focus.shape[1]
    if opacity is not None and opacity.shape != (b, 1, h, w):
        raise ValueError(f"opacity must be (B, 1, H, W) = {(b, 1, h, w)}, got {tuple(opacity.shape)}")
    backend = resolve_backend(backend, radiance.device)

    cam = batched_camera(camera, 5, b, (h, w))  # broadcasts against (B, S, 1, H, W)
    K = cam.K(radiance.dtype, radiance.device)  # (3, 3) or (B, 3, 3)
    means3d, covars3d = pixel_gaussians(depth, K, footprint_px)
    if backend == "gsplat":
        means2d, covars2d, zs, valid = _project_gsplat(means3d, covars3d, K, w, h)
    else:
        means2d, covars2d, zs = project_gaussians(means3d, covars3d, K)
        valid = None

    if coc_px is None:
        coc = signed_coc_px(depth[:, None], focus.view(b, s, 1, 1, 1), cam)  # (B,S,1,H,W)
    else:
        if coc_px.shape not in ((b, 1, h, w), (b, s, 1, h, w)):
            raise ValueError(f"coc_px must be (B, 1, H, W) or (B, S, 1, H, W), got {tuple(coc_px.shape)}")
        if not torch.isfinite(coc_px).all():
            raise ValueError("coc_px holds non-finite values")
        coc = coc_px.reshape(b, -1, 1, h, w).expand(b, s, 1, h, w)
    sigma2 = footprint_compensated_variance(coc_to_sigma_px(coc, sigma_per_coc).reshape(b, s, h * w) ** 2, footprint_px)
    eye = torch.eye(2, dtype=radiance.dtype, device=radiance.device)
    cov = (covars2d[:, None] + sigma2[..., None, None] * eye).reshape(b * s, h * w, 2, 2)

    layers = layer_ids_from_depths(zs, num_layers)
    op = torch.ones_like(zs) if opacity is None else opacity.reshape(b, -1)
    if valid is not None:
        op = op * valid
    rep = lambda t: t[:, None].expand(b, s, *t.shape[1:]).reshape(b * s, *t.shape[1:])  # noqa: E731
    colors = radiance.reshape(b, 3, -1).transpose(1, 2)
    out = rasterize_gaussians(
        rep(means2d),
        cov,
        rep(colors),
        rep(op),
        rep(zs),
        h,
        w,
        num_layers=num_layers,
        layer_ids=rep(layers),
        support=support,
        backend=backend,
    )
    shape = (b, s) if stacked else (b,)
    return {key: val.reshape(*shape, *val.shape[1:]) for key, val in out.items()}


class DefocusRenderer(nn.Module):
    """The renderer as a module: holds the camera and settings so LightningModules share one instance.

    Args:
        camera: default camera (preset name, JSON path or Camera); ``None`` means every call passes one
            (e.g. ``batch["camera"]``).
        backend: ``"auto"``, ``"torch"``, ``"gsplat"`` or ``"triton"``.
        num_layers: depth layers of the compositing.
        sigma_per_coc: PSF sigma per CoC diameter.
        footprint_px: sigma of each pixel's own Gaussian (px).
    """

    def __init__(
        self,
        camera: str | Camera | None = None,
        backend: Backend = "auto",
        num_layers: int = 32,
        sigma_per_coc: float = SIGMA_PER_COC,
        footprint_px: float = FOOTPRINT_SIGMA_PX,
    ) -> None:
        super().__init__()
        self.camera = None if camera is None else get_camera(camera)
        if backend not in ("auto", "torch", "gsplat", "triton"):
            raise ValueError(f"unknown render backend {backend!r}: use 'auto', 'torch', 'gsplat' or 'triton'")
        self.backend = backend
        self.num_layers = num_layers
        self.sigma_per_coc = sigma_per_coc
        self.footprint_px = footprint_px

    def forward(
        self,
        radiance: Tensor,
        depth: Tensor,
        focus_distance: Tensor,
        camera: Camera | dict | str | None = None,
        coc_px: Tensor | None = None,
        opacity: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """See :func:`render_defocus`; ``camera`` defaults to the module's."""
        camera = camera if camera is not None else self.camera
        if camera is None:
            raise ValueError("DefocusRenderer has no camera: pass camera= (e.g. batch['camera']) or build it with one")
        return render_defocus(
            radiance,
            depth,
            focus_distance,
            camera,
            backend=self.backend,
            coc_px=coc_px,
            opacity=opacity,
            num_layers=self.num_layers,
            sigma_per_coc=self.sigma_per_coc,
            footprint_px=self.footprint_px,
        )

    def extra_repr(self) -> str:
        name = None if self.camera is None else self.camera.name
        return (
            f"camera={name}, backend={self.backend}, num_layers={self.num_layers}, sigma_per_coc={self.sigma_per_coc}"
        )
