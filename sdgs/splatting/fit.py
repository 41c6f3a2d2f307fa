"""The Gaussian-splatting stage: fit one Gaussian per pixel to a whole focal stack (analysis by synthesis).

For a batch of scenes, the per-pixel Gaussians' depth (a *bounded* log inverse depth) and radiance are
fitted by gradient descent so that :func:`~sdgs.render.render_defocus` reproduces every image of the
stack. Loss: ``w_ssim (1 - SSIM) + (1 - w_ssim) L1`` over the S rendered images plus edge-aware
smoothness of the inverse depth. No ground-truth depth is read.

Schedule (our choices, each a :class:`SplatFitConfig` field):

* **Initial depth**: ``init="sweep"`` (default) runs a plane sweep with the same thin lens and Gaussian
  PSF: every candidate plane (uniform in log inverse depth) blurs the radiance estimate per focus
  distance (kornia), the photometric error aggregated by a guided filter (guide: the radiance estimate)
  picks a per-pixel soft-argmin at a low temperature. This is the classic depth-from-defocus search
  (Subbarao & Surya; Favaro & Soatto) and costs a few blurs. ``init="far"`` starts every pixel at
  ``init_depth_m`` (2 m); it needs many more iterations (docs/method.md, "Splatting stage").
* **Radiance**: initialised from a sharpness-weighted composite of the stack (squared Laplacian focus
  measure, smoothed), never from a network's own predictions; refined with a lower learning rate.
* **Coarse to fine**: the first iterations at half resolution (camera resized: the pixel pitch doubles, the
  CoC in pixels halves), the depth parameter upsampled, then the rest at full resolution.

Outputs (:class:`SplatFit`): ``depth`` z_gs, ``radiance``, signed CoC targets at each focus distance,
a ``confidence`` in [0, 1] and the per-image photometric ``residual``. The confidence is the expected
relative depth precision from the stack's first-order sensitivity to inverse depth: for a Gaussian PSF
``dI/dsigma = sigma * laplacian(I)`` (heat equation) and ``dsigma/d(1/z) = -kappa * A f d / ((d - f) p)``,
so a pixel whose blurred neighbourhood has no texture, or whose depth is so far that a large depth
change is a small inverse-depth change, is unconstrained and gets a confidence near zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

import kornia
import torch
import torch.nn.functional as F
from torch import Tensor

from sdgs.losses import photometric, smoothness
from sdgs.optics import (
    SIGMA_PER_COC,
    Camera,
    batched_camera,
    bounded_inverse_depth,
    coc_to_sigma_px,
    gaussian_psf_blur,
    inverse_depth_logit,
    lens_gain_px,
    signed_coc_px,
)
from sdgs.render.defocus import render_defocus

__all__ = [
    "FIT_ALGORITHM_VERSION",
    "SplatFitConfig",
    "SplatFit",
    "fit_gaussians",
    "focus_measure",
    "sharpness_composite",
    "splat_confidence",
]


#: Version of the fitting algorithm, part of every cache key: bump it when the algorithm changes (invalidates caches).
FIT_ALGORITHM_VERSION = 2


def _setting(default: Any, help_text: str) -> Any:
    """A :class:`SplatFitConfig` field: its default and its one-line help (CLI options and docs derive from it)."""
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class SplatFitConfig:
    """Settings of :func:`fit_gaussians`; the cache key hashes them.

    The one source of the splatting settings: each field's default and help (``metadata["help"]``) make the
    ``splat.*`` options of ``sdgs fit`` (:class:`~sdgs.splatting.GaussianSplattingStage`'s arguments) and the
    options of ``sdgs predict --stack``. The defaults are tuned on procedural FoD500-like scenes at 128 px on
    2 CPU cores (``make bench-splat``).
    """

    iters: int = _setting(16, "optimisation steps (the first coarse_fraction at half the working size)")
    lr: float = _setting(0.05, "Adam learning rate of the depth logit")
    radiance_lr: float = _setting(0.01, "Adam learning rate of the radiance")
    refine_radiance: bool = _setting(
        True, "also optimise the all-in-focus radiance (else keep the sharpness composite)"
    )
    coarse_fraction: float = _setting(0.75, "fraction of the steps run at half the working size")
    init: Literal["sweep", "far"] = _setting(
        "sweep", "initial depth: 'sweep' (plane sweep over the camera's depth range) or 'far' (init_depth_m)"
    )
    init_depth_m: float = _setting(2.0, "initial depth of init='far' (m)")
    sweep_planes: int = _setting(32, "planes of the initial sweep over the camera's depth range")
    sweep_window: int = _setting(15, "window (px) over which the sweep aggregates its photometric error")
    sweep_spacing: Literal["inverse", "log_inverse"] = _setting(
        "log_inverse", "sweep planes uniform in 'log_inverse' depth (constant relative steps) or in 'inverse' depth"
    )
    sweep_filter: Literal["box", "guided"] = _setting(
        "guided", "aggregation of the sweep's error: 'guided' (edge-aware, radiance as guide) or 'box'"
    )
    sweep_guided_eps: float = _setting(1e-3, "regularisation of the guided filter (larger = closer to a box)")
    sweep_temperature: float = _setting(
        0.001, "soft-argmin temperature over the sweep planes (small = nearly the argmin)"
    )
    num_layers: int = _setting(8, "depth layers of the renderer's compositing")
    ssim_weight: float = _setting(0.85, "weight of 1 - SSIM in the photometric loss (the rest is L1)")
    smooth_weight: float = _setting(0.02, "weight of the edge-aware inverse-depth smoothness")
    sigma_per_coc: float = _setting(SIGMA_PER_COC, "Gaussian PSF sigma per CoC diameter")
    backend: Literal["auto", "torch", "gsplat", "triton"] = _setting(
        "auto", "renderer: auto (= triton on CUDA when it imports, else torch), torch, triton or gsplat (CUDA)"
    )
    confidence_rel_error: float = _setting(0.3, "relative depth error at which the confidence is 0.5")
    fit_stride: int = _setting(
        1, "fit at 1/fit_stride of the stack's size (camera resized), outputs upsampled: large photos"
    )

    def key(self) -> dict:
        """The settings and :data:`FIT_ALGORITHM_VERSION`: what a cached fit depends on besides data and camera."""
        return {**asdict(self), "version": FIT_ALGORITHM_VERSION}

    @classmethod
    def help(cls) -> dict[str, str]:
        """One line of help per field (command-line help)."""
        return {f.name: f.metadata["help"] for f in fields(cls)}


@dataclass
class SplatFit:
    """Result of :func:`fit_gaussians` for a batch of B scenes with S images each.

    Attributes:
        depth: ``(B, 1, H, W)`` metres, the initial depth z_gs.
        radiance: ``(B, 3, H, W)`` fitted sharp colours.
        coc_targets: ``(B, S, 1, H, W)`` signed CoC (px) of z_gs at each focus distance.
        confidence: ``(B, 1, H, W)`` in [0, 1].
        residual: ``(B, S)`` mean absolute photometric error of the final render.
    """

    depth: Tensor
    radiance: Tensor
    coc_targets: Tensor
    confidence: Tensor
    residual: Tensor

    def to_dict(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _grey(img: Tensor) -> Tensor:
    return kornia.color.rgb_to_grayscale(img)


def focus_measure(stack: Tensor, window: int = 5, border_type: str = "replicate") -> Tensor:
    """Per-pixel sharpness of each stack image: squared Laplacian of the grey image, box-averaged.

    Args:
        stack: ``(B, S, 3, H, W)``.
        window: box size of the local average (px).
        border_type: kornia border handling of both filters.

    Returns:
        ``(B, S, 1, H, W)``.
    """
    b, s, c, h, w = stack.shape
    grey = _grey(stack.reshape(b * s, c, h, w))
    measure = kornia.filters.laplacian(grey, 3, border_type=border_type) ** 2
    return kornia.filters.box_blur(measure, (window, window), border_type=border_type).reshape(b, s, 1, h, w)


def sharpness_composite(stack: Tensor, power: float = 2.0) -> Tensor:
    """All-in-focus estimate: per-pixel weights from :func:`focus_measure` (5x5).

    Args:
        stack: ``(B, S, 3, H, W)``.

    Returns:
        ``(B, 3, H, W)``.
    """
    weight = (focus_measure(stack) + 1e-8) ** power
    return (weight * stack).sum(1) / weight.sum(1)


def _inv_bounds(camera: Camera) -> tuple[float, float]:
    near, far = camera.depth_range_m
    return 1.0 / far, 1.0 / near


def sweep_planes(camera: Camera, cfg: SplatFitConfig, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Candidate inverse depths (1/m) ``(J,)`` over the camera's depth range, near last.

    ``"inverse"``: uniform in inverse depth (uniform in CoC); ``"log_inverse"``: uniform in log inverse depth,
    the fit's own parameterisation (constant relative depth steps, so a wide range such as 0.1-10 m does
    not spend most planes nearer than the scene).
    """
    lo, hi = _inv_bounds(camera)
    if cfg.sweep_spacing == "log_inverse":
        return torch.logspace(math.log10(lo), math.log10(hi), cfg.sweep_planes, dtype=dtype, device=device)
    if cfg.sweep_spacing != "inverse":
        raise ValueError(f"sweep_spacing must be 'inverse' or 'log_inverse', got {cfg.sweep_spacing!r}")
    return torch.linspace(lo, hi, cfg.sweep_planes, dtype=dtype, device=device)


def plane_sweep(stack: Tensor, focus: Tensor, camera: Camera, radiance: Tensor, cfg: SplatFitConfig) -> Tensor:
    """Per-pixel inverse depth (1/m) ``(B, 1, H, W)`` minimising the windowed stack error over planes.

    The per-plane error is aggregated over a window: a box (``sweep_filter="box"``), or a guided filter
    with the radiance estimate as guide (``"guided"``, as cost-volume filtering in stereo matching), which
    keeps the window on one side of an image edge so that depth edges follow object outlines.
    """
    b, s, c, h, w = stack.shape
    planes = sweep_planes(camera, cfg, stack.dtype, stack.device)
    cam = batched_camera(camera, 3, b, (h, w))  # fields (B, 1, 1)
    errors = []
    for inv in planes:
        sig = coc_to_sigma_px(signed_coc_px(1.0 / inv, focus[:, :, None], cam), cfg.sigma_per_coc)  # (B,S,1)
        pred = gaussian_psf_blur(radiance[:, None].expand(b, s, c, h, w).reshape(-1, c, h, w), sig.reshape(-1))
        errors.append((pred.reshape(b, s, c, h, w) - stack).abs().mean((1, 2))[:, None])  # (B,1,H,W)
    err = torch.cat(errors, 1)  # (B,J,H,W)
    k = cfg.sweep_window
    if cfg.sweep_filter == "guided":
        cost = kornia.filters.guided_blur(_grey(radiance), err, k, cfg.sweep_guided_eps, border_type="replicate")
    elif cfg.sweep_filter == "box":
        cost = kornia.filters.box_blur(err, (k, k), border_type="replicate")
    else:
        raise ValueError(f"sweep_filter must be 'box' or 'guided', got {cfg.sweep_filter!r}")
    # soft-argmin with a temperature relative to each pixel's cost spread; a low one (0.001, nearly the argmin)
    # keeps flat-cost pixels from averaging towards the middle of the range (bench/splat_real.json)
    spread = (cost.amax(1, keepdim=True) - cost.amin(1, keepdim=True)).clamp_min(1e-6)
    prob = torch.softmax(-(cost - cost.amin(1, keepdim=True)) / (cfg.sweep_temperature * spread), 1)
    if cfg.sweep_spacing == "log_inverse":  # average where the planes are uniform
        return torch.exp((prob * planes.log().view(1, -1, 1, 1)).sum(1, keepdim=True))
    return (prob * planes.view(1, -1, 1, 1)).sum(1, keepdim=True)


def splat_confidence(
    rendered: Tensor,
    depth: Tensor,
    focus: Tensor,
    camera: Camera,
    sigma_per_coc: float,
    rel_error: float = 0.1,
    target: Tensor | None = None,
) -> Tensor:
    """Confidence ``(B, 1, H, W)`` in [0, 1] that blur pins depth to ``rel_error`` (module docstring).

    The noise level is the local photometric residual of the fit (floored at 8-bit quantisation), so
    pixels the model does not explain (occlusion edges, specularities) get less confidence; depth
    discontinuities of the fit, whose position blur cannot pin, are down-weighted too.

    Args:
        rendered: ``(B, S, 3, H, W)`` the fitted render of the stack.
        depth: ``(B, 1, H, W)`` fitted depth (m).
        focus: ``(B, S)`` focus distances (m).
        camera: optics.
        sigma_per_coc: PSF sigma per CoC.
        rel_error: relative depth error at which the confidence is 0.5.
        target: ``(B, S, 3, H, W)`` the real stack (for the residual); None uses quantisation noise only.
    """
    b, s, c, h, w = rendered.shape
    cam = batched_camera(camera, 5, b, (h, w))
    d = focus.view(b, s, 1, 1, 1)
    sigma = coc_to_sigma_px(signed_coc_px(depth[:, None], d, cam), sigma_per_coc)  # (B,S,1,H,W)
    dsigma_dinv = sigma_per_coc * lens_gain_px(d, cam) * d  # |d sigma / d(1/z)|, px * m
    lap = kornia.filters.laplacian(rendered.reshape(-1, c, h, w), 3, border_type="replicate").reshape(b, s, c, h, w)
    jac = (sigma * lap.abs() * dsigma_dinv).pow(2).sum((1, 2))  # (B,H,W): sum over images and channels
    # a 5x5 patch constrains one depth: its information adds up (box mean x 25)
    jac = 25.0 * kornia.filters.box_blur(jac[:, None], (5, 5), border_type="replicate")
    noise = torch.full_like(depth, 1.0 / 255.0)
    if target is not None:
        res2 = (rendered - target).pow(2).mean((1, 2))[:, None]
        noise = torch.maximum(noise, kornia.filters.box_blur(res2, (5, 5), border_type="replicate").sqrt())
    inv_std = noise / jac.sqrt().clamp_min(1e-12)  # std of inverse depth, 1/m
    rel_std = inv_std * depth  # relative depth std: dz / z = z * d(1/z)
    conf = 1.0 / (1.0 + (rel_std / rel_error) ** 2)
    grad = kornia.filters.spatial_gradient(depth.log(), normalized=False).abs().amax(2)  # (B,1,H,W)
    edge = F.max_pool2d(grad, 5, stride=1, padding=2)  # near a discontinuity, not just on it
    return conf / (1.0 + (edge / rel_error) ** 2)


def _coc_targets(depth: Tensor, focus: Tensor, camera) -> Tensor:
    """``(B, S, 1, H, W)`` signed thin-lens CoC (px) of ``(B, 1, H, W)`` depth (m) at each ``(B, S)`` focus
    distance (m): the networks' targets, for every image of the stack."""
    b, _, h, w = depth.shape
    return signed_coc_px(depth[:, None], focus.to(depth).view(b, -1, 1, 1, 1), batched_camera(camera, 5, b, (h, w)))


def fit_gaussians(
    stack: Tensor,
    focus_distance: Tensor,
    camera: Camera | dict | str,
    *,
    iters: int | None = None,
    lr: float | None = None,
    config: SplatFitConfig | None = None,
    on_step: Callable[[], None] | None = None,
    fit_images: Tensor | None = None,
) -> SplatFit:
    """Fit per-pixel Gaussians to focal stacks; self-supervised depth for each scene of the batch.

    Args:
        stack: ``(B, S, 3, H, W)`` in [0, 1], S >= 2 distinct focus distances.
        focus_distance: ``(B, S)`` metres.
        camera: optics (Camera, preset name, or ``batch["camera"]``); ``depth_range_m`` bounds the depth.
        iters, lr: override the config's iterations / depth learning rate.
        config: :class:`SplatFitConfig` (defaults if None).
        on_step: called after every optimisation step (``config.iters`` calls in all), e.g. a progress bar.
        fit_images: ``(S,)`` bool, the images the fit reads (default all; at least 2). The others still get
            their CoC targets: inputs for the networks that the lens model does not describe (a real photo
            registered and exposed unlike the stack synthesised around it).

    Returns:
        :class:`SplatFit`. Deterministic for given inputs (no random initialisation).
    """
    cfg = config or SplatFitConfig()
    cfg = replace(cfg, **{k: v for k, v in (("iters", iters), ("lr", lr)) if v is not None})
    _check_stack(stack, focus_distance)
    if fit_images is not None and fit_images.shape != (stack.shape[1],):
        raise ValueError(f"fit_images must be (S,) = ({stack.shape[1]},), got {tuple(fit_images.shape)}")
    if fit_images is not None and not bool(fit_images.all()):
        keep = fit_images.to(device=stack.device, dtype=torch.bool)
        fit = fit_gaussians(stack[:, keep], focus_distance[:, keep], camera, config=cfg, on_step=on_step)
        return replace(fit, coc_targets=_coc_targets(fit.depth, focus_distance, camera))
    if cfg.fit_stride < 1:
        raise ValueError(f"fit_stride must be >= 1, got {cfg.fit_stride}")
    # Callable from anywhere, e.g. a validation hook under inference mode: fit with autograd on copies.
    with torch.inference_mode(False), torch.enable_grad():
        if isinstance(camera, dict):
            camera = {k: v.clone() for k, v in camera.items()}
        if cfg.fit_stride == 1:
            return _fit(stack.clone(), focus_distance.clone(), camera, cfg, on_step)
        return _fit_strided(stack, focus_distance, camera, cfg, on_step)


def _fit_strided(
    stack: Tensor, focus: Tensor, camera: Camera | dict | str, cfg: SplatFitConfig, on_step: Callable[[], None] | None
) -> SplatFit:
    """Fit at ``1 / cfg.fit_stride`` of the size, then bring every output back to the stack's size.

    The camera is resized with the stack (its pixel pitch grows, so the CoC in pixels shrinks and the physics
    holds). Depth is upsampled in the bounded logit space, the confidence and radiance bilinearly; the CoC
    targets are recomputed from the upsampled depth with the full-size camera.
    """
    b, s, c, h, w = stack.shape
    hs, ws = max(8, round(h / cfg.fit_stride)), max(8, round(w / cfg.fit_stride))
    cam_full = batched_camera(camera, 4, b, (h, w))
    near, far = cam_full.depth_range_m
    small = F.interpolate(stack.reshape(b * s, c, h, w), size=(hs, ws), mode="area").reshape(b, s, c, hs, ws)
    fit = _fit(small, focus.clone(), cam_full.resize(hs, ws), cfg, on_step)
    up = lambda t: F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)  # noqa: E731
    depth = 1.0 / bounded_inverse_depth(up(inverse_depth_logit(1.0 / fit.depth, near, far, eps=1e-3)), near, far)
    coc = _coc_targets(depth, focus, cam_full)
    return SplatFit(
        depth=depth, radiance=up(fit.radiance).clamp(0, 1), coc_targets=coc, confidence=up(fit.confidence).clamp(0, 1),
        residual=fit.residual,
    )  # fmt: skip


def _fit(
    stack: Tensor,
    focus_distance: Tensor,
    camera: Camera | dict | str,
    cfg: SplatFitConfig,
    on_step: Callable[[], None] | None = None,
) -> SplatFit:
    b, s, c, h, w = stack.shape
    cam_full = batched_camera(camera, 4, b, (h, w))  # also builds a batched camera from batch["camera"]
    near, far = cam_full.depth_range_m
    focus = focus_distance.to(stack)

    with torch.no_grad():
        radiance0 = sharpness_composite(stack)
        if cfg.init == "sweep":
            inv0 = plane_sweep(stack, focus, cam_full, radiance0, cfg)
        else:
            inv0 = torch.full((b, 1, h, w), 1.0 / cfg.init_depth_m, dtype=stack.dtype, device=stack.device)
        theta0 = inverse_depth_logit(inv0, near, far, eps=1e-3)  # inverse depth stays inside the bounds

    def inverse_depth(theta: Tensor) -> Tensor:
        return bounded_inverse_depth(theta, near, far)

    def run(theta: Tensor, radiance: Tensor, target: Tensor, cam, n: int) -> tuple[Tensor, Tensor]:
        theta = theta.detach().clone().requires_grad_()
        radiance = radiance.detach().clone().requires_grad_(cfg.refine_radiance)
        groups = [{"params": [theta], "lr": cfg.lr}]
        if cfg.refine_radiance:
            groups.append({"params": [radiance], "lr": cfg.radiance_lr})
        opt = torch.optim.Adam(groups)
        for _ in range(n):
            inv = inverse_depth(theta)
            out = render_defocus(
                radiance.clamp(0, 1), 1.0 / inv, focus, cam, backend=cfg.backend,
                num_layers=cfg.num_layers, sigma_per_coc=cfg.sigma_per_coc,
            )["image"]  # fmt: skip
            photo = photometric(out, target, cfg.ssim_weight, reduce=False)  # (B, S)
            loss = photo.mean(1).sum() + cfg.smooth_weight * smoothness(inv, radiance.detach()) * b
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if on_step is not None:
                on_step()
        return theta.detach(), radiance.detach()

    n_coarse = int(round(cfg.iters * cfg.coarse_fraction)) if min(h, w) >= 32 else 0
    theta, radiance = theta0, radiance0
    if n_coarse:
        hc, wc = h // 2, w // 2
        small = F.interpolate(stack.reshape(b * s, c, h, w), size=(hc, wc), mode="area").reshape(b, s, c, hc, wc)
        cam_c = cam_full.resize(hc, wc)
        theta_c = F.interpolate(theta, size=(hc, wc), mode="area")
        rad_c = F.interpolate(radiance, size=(hc, wc), mode="area")
        theta_c, _ = run(theta_c, rad_c, small, cam_c, n_coarse)
        theta = F.interpolate(theta_c, size=(h, w), mode="bilinear", align_corners=False)
    theta, radiance = run(theta, radiance, stack, cam_full, cfg.iters - n_coarse)

    with torch.no_grad():
        depth = 1.0 / inverse_depth(theta)
        radiance = radiance.clamp(0, 1)
        rendered = render_defocus(
            radiance, depth, focus, cam_full, backend=cfg.backend, num_layers=cfg.num_layers,
            sigma_per_coc=cfg.sigma_per_coc,
        )["image"]  # fmt: skip
        coc = _coc_targets(depth, focus, cam_full)
        conf = splat_confidence(
            rendered, depth, focus, cam_full, cfg.sigma_per_coc, cfg.confidence_rel_error, target=stack
        )
        residual = (rendered - stack).abs().mean((2, 3, 4))
    return SplatFit(depth=depth, radiance=radiance, coc_targets=coc, confidence=conf, residual=residual)


def _check_stack(stack: Tensor, focus: Tensor) -> None:
    if stack.ndim != 5 or stack.shape[2] != 3:
        raise ValueError(f"stack must be (B, S, 3, H, W), got {tuple(stack.shape)}")
    b, s = stack.shape[:2]
    if tuple(focus.shape) != (b, s):
        raise ValueError(f"focus_distance must be (B, S) = {(b, s)}, got {tuple(focus.shape)}")
    if s < 2:
        raise ValueError(f"the splatting stage needs a focal stack of S >= 2 focus distances, got S = {s}")
    for i in range(b):
        if torch.unique(focus[i]).numel() != s:
            raise ValueError(
                f"scene {i} of the batch has duplicate focus distances {focus[i].tolist()}; "
                "each image of a stack needs its own focus distance"
            )
    bad = ~torch.isfinite(stack).flatten(1).all(1)
    if bad.any():
        raise ValueError(f"scenes {bad.nonzero().flatten().tolist()} of the batch hold non-finite pixels")
