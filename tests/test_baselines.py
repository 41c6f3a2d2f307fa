"""No-learning baselines: one image's blur through the thin lens (Zhuo & Sim 2011)."""

from __future__ import annotations

import kornia
import pytest
import torch

from sdgs.baselines import blur_sigma_one_image, defocus_depth_one_image
from sdgs.optics import DFD_INDOOR, SIGMA_PER_COC, coc_px


def _blurred_steps(sigma_px: float, size: int = 96) -> torch.Tensor:
    """Vertical step edges every 16 px, blurred by a Gaussian of ``sigma_px``: ``(1, 3, size, size)``."""
    cols = (torch.arange(size) // 16 % 2).float()
    img = (0.2 + 0.6 * cols).view(1, 1, 1, size).expand(1, 3, size, size).contiguous()
    k = 2 * int(4 * sigma_px) + 1
    return kornia.filters.gaussian_blur2d(img, (k, k), (sigma_px, sigma_px), border_type="reflect")


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.0])
def test_blur_sigma_of_a_blurred_edge(sigma: float) -> None:
    est = blur_sigma_one_image(_blurred_steps(sigma))
    assert est.shape == (1, 1, 96, 96)
    assert float(est[0, 0, 20:76, 20:76].median()) == pytest.approx(sigma, rel=0.25)


def test_sharper_edges_read_nearer_the_focus_plane_far_of_focus_assumed() -> None:
    """A plane beyond focus: its CoC through the thin lens gives back its depth (far-of-focus assumption),
    and a blurrier image reads farther. Depth stays in the camera's range."""
    focus = torch.tensor([1.7])
    for depth_m in (2.5, 4.0):
        sigma = float(coc_px(torch.tensor(depth_m), 1.7, DFD_INDOOR)) * SIGMA_PER_COC
        z = defocus_depth_one_image(_blurred_steps(sigma), focus, DFD_INDOOR)
        assert float(z[0, 0, 20:76, 20:76].median()) == pytest.approx(depth_m, rel=0.3)
    near, far = DFD_INDOOR.depth_range_m
    very = defocus_depth_one_image(_blurred_steps(6.0), focus, DFD_INDOOR)  # beyond the blur of infinity
    assert float(very.max()) <= far * 1.001 and float(very.min()) >= near * 0.999
