"""Splatting-stage quality and speed: z_gs vs ground truth on held-out procedural scenes.

    python -m bench.splat --out bench/splat.json

Quality on 40 procedural FoD500 scenes (128-px crops of the sensor, test seeds), DFV protocol (clip to
[0, 1.5] m), all pixels and near pixels (GT < 1.5 m), beside the constant baseline
(:func:`sdgs.baselines.median_depth` of 64 TRAINING scenes' GT clipped at 1.5 m, as the results table does).
Speed: seconds per scene at 64, 128 and 256 px (batch 8; the GPU at 256
px when CUDA exists).
"""

from __future__ import annotations

import argparse
import time

import torch

from bench.common import write_json
from datamodules.procedural import SPLIT_OFFSETS, render_scene
from sdgs.baselines import median_depth
from sdgs.metrics import DFV_CLIP_M, DepthMetrics
from sdgs.optics import FOD500, Camera
from sdgs.splatting import SplatFitConfig, fit_gaussians


def scenes(n: int, size: int, seed: int = 0, split: str = "test"):
    items = [render_scene(seed + SPLIT_OFFSETS[split] + i, size, FOD500) for i in range(n)]
    stack = torch.stack([s for s, _, _ in items])
    depth = torch.stack([d for _, d, _ in items])
    cam = items[0][2]
    return stack, depth, cam


def evaluate(pred: torch.Tensor, gt: torch.Tensor) -> dict:
    out = {}
    for name, near in (("all", None), ("near", DFV_CLIP_M)):
        m = DepthMetrics("dfv", near_max=near)
        m.update(pred, gt)
        vals = m.compute()
        out[name] = {k: round(float(vals[k]), 4) for k in ("abs_rel", "rmse", "delta1")}
    return out


def fit_fields(
    stack: torch.Tensor,
    focus: torch.Tensor,
    camera: Camera | dict,
    cfg: SplatFitConfig,
    batch: int = 8,
    device: str = "cpu",
    keep: tuple[str, ...] = ("depth",),
) -> tuple[dict[str, torch.Tensor], float]:
    """Fit ``(N, S, 3, H, W)`` stacks in batches; the ``keep`` fields of :class:`SplatFit` and s per scene.

    ``camera`` is a Camera or a collated ``batch["camera"]`` dict of ``(N,)`` tensors (sliced per batch).
    """
    out: dict[str, list] = {k: [] for k in keep}
    t0 = time.perf_counter()
    for i in range(0, stack.shape[0], batch):
        cam = camera if isinstance(camera, Camera) else {k: v[i : i + batch] for k, v in camera.items()}
        fit = fit_gaussians(stack[i : i + batch].to(device), focus[i : i + batch].to(device), cam, config=cfg)
        for k in keep:
            out[k].append(getattr(fit, k).cpu())
    if device == "cuda":
        torch.cuda.synchronize()
    return {k: torch.cat(v) for k, v in out.items()}, (time.perf_counter() - t0) / stack.shape[0]


def fit_all(stack, cam, cfg: SplatFitConfig, batch: int = 8, device: str = "cpu") -> tuple[torch.Tensor, float]:
    focus = torch.tensor(cam.focus_distances_m).expand(stack.shape[0], -1)
    fits, sec = fit_fields(stack, focus, cam, cfg, batch, device)
    return fits["depth"], sec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="bench/splat.json")
    parser.add_argument("--scenes", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(2)
    cfg = SplatFitConfig()
    stack, gt, cam = scenes(args.scenes, 128)
    z_gs, sec = fit_all(stack, cam, cfg)
    train_depth = scenes(64, 128, split="train")[1]
    const = torch.full_like(gt, median_depth(train_depth, clip_max=DFV_CLIP_M))  # as DFV scores depth
    quality = {"z_gs": evaluate(z_gs, gt), "constant_train_median": evaluate(const, gt)}
    near_ratio = quality["z_gs"]["near"]["abs_rel"] / quality["constant_train_median"]["near"]["abs_rel"]
    speed = {"128": round(sec, 3)}
    for size in (64, 256):
        s, _, c = scenes(8, size, seed=77)
        speed[str(size)] = round(fit_all(s, c, cfg)[1], 3)
    result = {
        "settings": cfg.key(),
        "dataset": f"{args.scenes} procedural test scenes, FoD500 optics, 128-px sensor crops",
        "protocol": "DFV: clip pred and GT to [0, 1.5] m, gt > 0, per-image mean; near = GT < 1.5 m",
        "quality": quality,
        "near_abs_rel_ratio_to_constant": round(near_ratio, 3),
        "seconds_per_scene_cpu": speed,
    }
    if torch.cuda.is_available():
        s, _, c = scenes(32, 256, seed=99)
        fit_all(s[:8], c, cfg, device="cuda")  # warm-up (CUDA init, kernels)
        result["seconds_per_scene_gpu_256"] = round(fit_all(s, c, cfg, batch=32, device="cuda")[1], 4)
    write_json(args.out, result)


if __name__ == "__main__":
    main()
