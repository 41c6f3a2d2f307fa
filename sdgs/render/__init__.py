"""Defocus Gaussian-splatting renderer: one API; pure-PyTorch, Triton (fused kernels) and gsplat (CUDA) backends.

The splatting stage that fits Gaussians to focal stacks with it lives in :mod:`sdgs.splatting`.
"""

from sdgs.render.defocus import (
    FOOTPRINT_SIGMA_PX,
    DefocusRenderer,
    pixel_gaussians,
    project_gaussians,
    render_defocus,
)
from sdgs.render.rasterize import (
    composite_layers,
    gsplat_available,
    layer_ids_from_depths,
    rasterize_gaussians,
    resolve_backend,
    triton_available,
)

__all__ = [
    "FOOTPRINT_SIGMA_PX",
    "DefocusRenderer",
    "composite_layers",
    "gsplat_available",
    "layer_ids_from_depths",
    "pixel_gaussians",
    "project_gaussians",
    "rasterize_gaussians",
    "render_defocus",
    "resolve_backend",
    "triton_available",
]
