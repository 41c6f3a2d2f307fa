"""``make bench-texture-error`` (bench/texture_error.py): the contrast measure and the binned errors."""

from __future__ import annotations

import math

import pytest
import torch

from bench.texture_error import BIN_NAMES, binned, texture_strength


def test_texture_strength_is_zero_on_flat_colour_and_peaks_at_an_edge() -> None:
    flat = torch.full((1, 3, 16, 16), 0.3)
    assert float(texture_strength(flat).abs().max()) < 1e-6
    step = torch.zeros(1, 3, 16, 16)
    step[..., 8:] = 1.0
    s = texture_strength(step)[0, 0]
    assert float(s[:, 8].min()) > 0.1 > 1e-6 > float(s[:, :4].max())  # 4 px from the edge: outside the 5x5 mean


def test_binned_shares_errors_and_bias() -> None:
    gt = torch.tensor([0.5, 1.0, 2.0, 1.0])
    pred = torch.tensor([0.25, 1.5, 3.0, 1.0])  # too near, too far, far (both clipped to 1.5 m), exact
    strength = torch.tensor([0.0, 0.0, 0.01, 0.1])
    rows = binned(pred, gt, strength)
    flat, weak, strong = rows[BIN_NAMES[0]], rows[BIN_NAMES[1]], rows[BIN_NAMES[3]]
    assert [rows[b]["pixel_share"] for b in BIN_NAMES] == [0.5, 0.25, 0.0, 0.25]
    assert flat["abs_rel"] == pytest.approx(0.5) and flat["near_abs_rel"] == pytest.approx(0.5)
    assert flat["near_log_ratio"] == pytest.approx(round((math.log(0.5) + math.log(1.5)) / 2, 4))
    assert weak["abs_rel"] == 0.0 and weak["near_abs_rel"] is None  # GT 2 m: far, and right after the clip
    assert strong["abs_rel"] == 0.0 and rows[BIN_NAMES[2]]["abs_rel"] is None  # an empty bin
    assert rows["all"]["pixel_share"] == 1.0 and rows["all"]["abs_rel"] == pytest.approx(0.25)
