"""Depth metrics against hand-computed values, and DDP (2 gloo processes) equals one process."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from sdgs.metrics import DepthMetrics, per_image_depth_errors


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
