"""Route the gsplat backend's CUDA calls to gsplat's pure-PyTorch references, for tests on CPU.

gsplat ships torch transcriptions of the CUDA ops the backend calls (``gsplat.cuda._torch_impl``):
``_fully_fused_projection`` (used by ``render_defocus``) and ``_isect_tiles`` (used by
``rasterize_gaussians``); both exist in gsplat >= 1.5. :func:`route_gsplat_to_torch_reference` swaps the
wrapper functions the backend imports for adapters around them and lets ``backend="gsplat"`` through the
CUDA-only device check, so everything of the gsplat path except the CUDA kernels themselves runs on CPU.
The adapters also assert the CUDA kernels' input contracts (contiguity, int32 radii, float32 depths) that
the references do not check. Test-only: library code never does this.
"""

from __future__ import annotations

from collections import Counter

import gsplat.cuda._torch_impl as gsplat_ref
import gsplat.cuda._wrapper as gsplat_wrapper
import pytest
import torch

import sdgs.render.defocus as defocus_mod
import sdgs.render.rasterize as rasterize_mod
from sdgs.render import resolve_backend

#: Indices of the symmetric 3x3 matrix in gsplat's upper-triangle layout [xx, xy, xz, yy, yz, zz].
_TRIU_TO_FULL = [[0, 1, 2], [1, 3, 4], [2, 4, 5]]


def _require_kernel_inputs(**tensors: torch.Tensor) -> None:
    """The CUDA ops' C++ entry points reject non-contiguous inputs (gsplat ``CHECK_INPUT``)."""
    for name, t in tensors.items():
        assert t.is_contiguous(), f"{name} must be contiguous for gsplat's CUDA op"


def route_gsplat_to_torch_reference(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Patch (for this test) gsplat's wrappers and the backend check; returns a counter of the calls."""
    calls: Counter = Counter()

    def fully_fused_projection(
        means, covars, quats, scales, viewmats, Ks, width, height, eps2d=0.3, near_plane=0.01,
        far_plane=1e10, radius_clip=0.0, packed=False, sparse_grad=False, calc_compensations=False,
        camera_model="pinhole", opacities=None,
    ):  # fmt: skip
        # Signatures differ: the wrapper takes covariances as the upper triangle [..., N, 6] (or quats and
        # scales), the reference full [..., N, 3, 3]; the reference has no radius_clip, packed, sparse_grad
        # or opacities, so the backend must not rely on them.
        assert covars is not None and quats is None and scales is None, "backend passes covariances"
        assert covars.shape[-1] == 6 and means.dtype == covars.dtype == torch.float32
        assert not packed and not sparse_grad and radius_clip == 0.0 and opacities is None
        _require_kernel_inputs(means=means, covars=covars, viewmats=viewmats, Ks=Ks)
        calls["fully_fused_projection"] += 1
        full = covars[..., _TRIU_TO_FULL]
        return gsplat_ref._fully_fused_projection(
            means, full, viewmats, Ks, width, height, eps2d, near_plane, far_plane, calc_compensations, camera_model
        )

    def isect_tiles(
        means2d, radii, depths, tile_size, tile_width, tile_height, sort=True, segmented=False, packed=False,
        n_images=None, image_ids=None, gaussian_ids=None,
    ):  # fmt: skip
        # The reference lacks segmented/packed; IntersectTile.cu reads radii as int32 and reinterprets the
        # depth bits as float32 (a float64 depth would be read as garbage, an int64 radius as two ints).
        assert not segmented and not packed and image_ids is None and gaussian_ids is None
        assert radii.dtype == torch.int32 and depths.dtype == torch.float32 and means2d.dtype == torch.float32
        assert means2d.shape[:-1] == radii.shape[:-1] == depths.shape and radii.shape[-1] == 2
        _require_kernel_inputs(means2d=means2d, radii=radii, depths=depths)
        tiles_per_gauss, isect_ids, flatten_ids = gsplat_ref._isect_tiles(
            means2d, radii, depths, tile_size, tile_width, tile_height, sort
        )
        calls["isect_tiles"] += 1
        most = int(tiles_per_gauss.amax()) if tiles_per_gauss.numel() else 0
        calls["max_tiles_per_gaussian"] = max(calls["max_tiles_per_gaussian"], most)
        return tiles_per_gauss, isect_ids, flatten_ids

    monkeypatch.setattr(gsplat_wrapper, "fully_fused_projection", fully_fused_projection)
    monkeypatch.setattr(gsplat_wrapper, "isect_tiles", isect_tiles)

    # Let backend="gsplat" pass the CUDA-only check (both modules bound resolve_backend at import).
    def resolve(backend: str, device: torch.device) -> str:
        return "gsplat" if backend == "gsplat" else resolve_backend(backend, device)

    monkeypatch.setattr(rasterize_mod, "resolve_backend", resolve)
    monkeypatch.setattr(defocus_mod, "resolve_backend", resolve)
    return calls
