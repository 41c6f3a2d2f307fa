"""Depth metrics against hand-computed values, and DDP (2 gloo processes) equals one process."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from sdgs.metrics import (
    DepthMetrics,
    delta_fraction,
    error_maps,
    image_mean,
    per_image_depth_errors,
    valid_mask,
)


def _img(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).view(1, 1, 1, -1)


def test_dfv_hand_values_clip_and_invalid() -> None:
    pred = _img([1.0, 0.5, 2.0, 9.0])
    gt = _img([1.0, 1.0, 3.0, 0.0])  # gt 3 is clipped to 1.5 (not masked); gt 0 is ignored
    out, has = per_image_depth_errors(pred, gt, "dfv")
    # valid pixels: (1,1), (0.5,1), (clip 2 -> 1.5, clip 3 -> 1.5)
    assert bool(has[0])
    assert float(out["abs_rel"]) == pytest.approx((0 + 0.5 + 0) / 3)
    assert float(out["mse"]) == pytest.approx((0 + 0.25 + 0) / 3)
    assert float(out["rmse"]) == pytest.approx(math.sqrt(0.25 / 3))
    assert float(out["sq_rel"]) == pytest.approx(0.25 / 3)
    assert float(out["log_rmse"]) == pytest.approx(math.sqrt(math.log(2) ** 2 / 3))
    assert float(out["delta1"]) == pytest.approx(100 * 2 / 3)  # percent
    assert float(out["delta3"]) == pytest.approx(100 * 2 / 3)  # ratio 2 > 1.25 ** 3 = 1.953


def test_dfv_near_pixels() -> None:
    pred, gt = _img([1.0, 1.0]), _img([1.0, 2.0])
    out, _ = per_image_depth_errors(pred, gt, "dfv", near_max=1.5)
    assert float(out["abs_rel"]) == 0.0  # the gt = 2 m pixel is not near


def test_eigen_hand_values_log10_and_crop() -> None:
    pred, gt = _img([2.0, 4.0]), _img([1.0, 4.0])
    out, _ = per_image_depth_errors(pred, gt, "eigen")
    assert float(out["abs_rel"]) == pytest.approx(0.5)
    assert float(out["rmse"]) == pytest.approx(math.sqrt(0.5))
    assert float(out["rmse_log"]) == pytest.approx(math.sqrt(math.log(2) ** 2 / 2))
    assert float(out["delta1"]) == pytest.approx(0.5)  # fraction
    out10, _ = per_image_depth_errors(pred, gt, "eigen", log10=True)
    assert float(out10["rmse_log"]) == pytest.approx(math.sqrt(math.log10(2) ** 2 / 2))
    gt_full = torch.ones(1, 1, 480, 640)
    pred_full = torch.ones(1, 1, 480, 640)
    pred_full[..., :45, :] = 5.0  # outside the Eigen crop
    cropped, _ = per_image_depth_errors(pred_full, gt_full, "eigen", eigen_crop=True)
    assert float(cropped["abs_rel"]) == 0.0
    # the crop is exactly rows [45, 471) and columns [41, 601) of a 480x640 frame
    cases = [(45, 41, True), (470, 600, True), (44, 300, False), (471, 300, False), (200, 40, False), (200, 601, False)]
    for row, col, inside in cases:
        pred_full = torch.ones(1, 1, 480, 640)
        pred_full[..., row, col] = 2.0
        cropped, _ = per_image_depth_errors(pred_full, gt_full, "eigen", eigen_crop=True)
        assert float(cropped["abs_rel"]) == pytest.approx(1.0 / (426 * 560) if inside else 0.0), (row, col)


def _random_pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth maps (3, 1, 6, 7) with invalid GT (0, inf), GT beyond the DFV clip and zero predictions."""
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(3, 1, 6, 7, generator=g, dtype=torch.float64) * 4
    gt[0, 0, 0, :3] = 0.0
    gt[1, 0, 2, 2] = float("inf")
    gt[2] = 0.0  # no valid pixel
    pred = (gt * (1 + 0.5 * torch.randn(3, 1, 6, 7, generator=g, dtype=torch.float64))).clamp_min(0)
    pred[0, 0, 5, :2] = 0.0
    pred[1, 0, 3, 4] = 12.0
    return pred, gt


def _brute_force(pred: torch.Tensor, gt: torch.Tensor, protocol: str, near_max=None) -> dict[str, list]:
    """The protocol's per-pixel formulas written out pixel by pixel (docs/protocols.md), per image."""
    out: dict[str, list] = {k: [] for k in ("valid", "abs_rel", "rmse", "log_rmse", "delta1", "delta2")}
    for b in range(pred.shape[0]):
        rows = []
        for p, g in zip(pred[b].flatten().tolist(), gt[b].flatten().tolist()):
            if protocol == "dfv":
                ok = math.isfinite(g) and g > 0 and (near_max is None or g < near_max)
                p, g = max(min(max(p, 0.0), 1.5), 1e-6), min(max(g, 0.0), 1.5)
            else:
                ok = math.isfinite(g) and 1e-3 < g < 10.0
                p = min(max(p, 1e-3), 10.0)
            if ok:
                rows.append((p, g))
        out["valid"].append(len(rows))
        n = max(len(rows), 1)
        out["abs_rel"].append(sum(abs(p - g) / g for p, g in rows) / n)
        out["rmse"].append(math.sqrt(sum((p - g) ** 2 for p, g in rows) / n))
        out["log_rmse"].append(math.sqrt(sum((math.log(p) - math.log(g)) ** 2 for p, g in rows) / n))
        for k in (1, 2):
            out[f"delta{k}"].append(sum(max(p / g, g / p) < 1.25**k for p, g in rows) / n)  # fraction
    return out


@pytest.mark.parametrize(("protocol", "near_max"), [("dfv", None), ("dfv", 1.5), ("eigen", None)])
def test_building_blocks_equal_the_brute_force_formulas(protocol: str, near_max: float | None) -> None:
    pred, gt = _random_pair()
    expected = _brute_force(pred, gt, protocol, near_max)
    maps = error_maps(pred, gt, protocol, near_max=near_max)
    valid = maps["valid"]
    assert torch.equal(valid, valid_mask(gt, protocol, near_max=near_max))
    assert valid.sum((1, 2, 3)).tolist() == expected["valid"]
    assert all(torch.isfinite(m).all() for k, m in maps.items() if k != "valid")  # finite even where invalid
    got = {
        "abs_rel": image_mean(maps["abs_rel"], valid),
        "rmse": image_mean(maps["sq_err"], valid).sqrt(),
        "log_rmse": image_mean(maps["log_ratio"] ** 2, valid).sqrt(),
        "delta1": delta_fraction(maps["delta_ratio"], valid, 1),
        "delta2": delta_fraction(maps["delta_ratio"], valid, 2),
    }
    for key, values in got.items():
        assert values.tolist() == pytest.approx(expected[key], rel=1e-12, abs=1e-12), key
    # per_image_depth_errors is those blocks, with δ in the protocol's unit (DFV percent, Eigen fraction)
    errors, has = per_image_depth_errors(pred, gt, protocol, near_max=near_max)
    assert has.tolist() == [n > 0 for n in expected["valid"]]
    scale = 100.0 if protocol == "dfv" else 1.0
    assert errors["delta1"].tolist() == pytest.approx([scale * v for v in expected["delta1"]], rel=1e-12)
    assert errors["abs_rel"].tolist() == pytest.approx(expected["abs_rel"], rel=1e-12, abs=1e-12)
    rmse_log = errors["log_rmse" if protocol == "dfv" else "rmse_log"]
    assert rmse_log.tolist() == pytest.approx(expected["log_rmse"], rel=1e-12, abs=1e-12)


def test_valid_mask_eigen_crop_scales_with_the_image() -> None:
    gt = torch.ones(1, 1, 240, 320)
    mask = valid_mask(gt, "eigen", eigen_crop=True)[0, 0]
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    assert (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1) == (22, 236, 20, 300)  # 45/2 ...
    with pytest.raises(ValueError, match="protocol"):
        valid_mask(gt, "median")


def test_metric_is_mean_of_per_image_values() -> None:
    m = DepthMetrics("dfv")
    m.update(_img([1.0, 1.0]), _img([1.0, 1.0]))  # abs_rel 0
    m.update(torch.cat([_img([2.0, 2.0]), _img([1.0, 0.5])]), torch.cat([_img([1.0, 1.0]), _img([0.0, 0.0])]))
    # third image has no valid pixel: not counted
    assert float(m.images) == 2
    assert float(m.compute()["abs_rel"]) == pytest.approx((0.0 + 0.5) / 2)


def _worker(rank: int, world: int, path: str, preds: torch.Tensor, gts: torch.Tensor) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", os.environ["SDGS_TEST_PORT"]
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    metric = DepthMetrics("dfv", near_max=1.5)
    for i in range(rank, preds.shape[0], world):
        metric.update(preds[i : i + 1], gts[i : i + 1])
    result = metric.compute()
    if rank == 0:
        torch.save({k: v.double() for k, v in result.items()}, path)
    torch.distributed.destroy_process_group()


def test_two_gloo_processes_equal_one(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    gts = torch.rand(7, 1, 16, 16, generator=g) * 2.5 + 0.1
    gts[0, :, :4] = 0
    preds = gts * (1 + 0.3 * torch.randn(7, 1, 16, 16, generator=g)).clamp_min(0.1)
    single = DepthMetrics("dfv", near_max=1.5)
    single.update(preds, gts)
    expected = single.compute()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        os.environ["SDGS_TEST_PORT"] = str(s.getsockname()[1])
    out = tmp_path / "ddp.pt"
    mp.start_processes(_worker, args=(2, str(out), preds, gts), nprocs=2, join=True, start_method="spawn")
    got = torch.load(out)
    for key, value in expected.items():
        assert float(got[key]) == pytest.approx(float(value), rel=1e-6, abs=1e-9), key
