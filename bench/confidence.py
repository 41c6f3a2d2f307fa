"""Calibration of the splatting stage's confidence: what its values say about the actual depth error.

    python -m bench.confidence --out bench/confidence.json         (make bench-confidence, about a minute)

Held-out procedural test scenes (FoD500 optics, 128-px sensor crops, pink textures), fitted with the default
:class:`sdgs.splatting.SplatFitConfig`. The confidence is built so that 0.5 means "relative depth error
``confidence_rel_error`` (0.3)" (:func:`sdgs.splatting.fit.splat_confidence`). Written: per confidence bin the
pixel share and the mean relative depth error there (all pixels, no DFV clip: the confidence is about the
fit's own depth), and per scene the share of pixels at confidence >= 0.5 with the nearest ground-truth depth,
since the relative precision blur gives falls with distance (``dz / z = z d(1/z)``).
"""

from __future__ import annotations

import argparse
import time

import torch

from bench.common import write_json
from datamodules.procedural import SPLIT_OFFSETS, render_scene
from sdgs.metrics import relative_error
from sdgs.optics import FOD500
from sdgs.splatting import fit_gaussians
from sdgs.splatting.fit import SplatFitConfig

BINS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0001)


def calibration(conf: torch.Tensor, rel_err: torch.Tensor) -> list[dict]:
    """Per confidence bin: its range, pixel share and mean relative error (None where empty)."""
    rows = []
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        m = (conf >= lo) & (conf < hi)
        err = float(rel_err[m].mean()) if m.any() else None
        rows.append({"confidence": [lo, min(hi, 1.0)], "pixel_share": round(float(m.float().mean()), 4),
                     "mean_rel_error": None if err is None else round(err, 4)})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/confidence.json")
    parser.add_argument("--scenes", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    cfg = SplatFitConfig()
    confs, errs, scenes = [], [], []
    t0 = time.perf_counter()
    for i in range(args.scenes):
        seed = SPLIT_OFFSETS["test"] + i
        stack, depth, cam = render_scene(seed, args.size, FOD500)
        fit = fit_gaussians(stack[None], torch.tensor(cam.focus_distances_m)[None], cam, config=cfg)
        conf, rel = fit.confidence[0, 0], relative_error(fit.depth[0, 0], depth[0])
        confs.append(conf.flatten())
        errs.append(rel.flatten())
        sure = conf >= 0.5
        scenes.append({
            "seed": seed, "nearest_gt_m": round(float(depth.min()), 3), "median_gt_m": round(float(depth.median()), 3),
            "confident_share": round(float(sure.float().mean()), 4), "mean_rel_error": round(float(rel.mean()), 4),
            "mean_rel_error_confident": round(float(rel[sure].mean()), 4) if sure.any() else None,
        })  # fmt: skip
    conf, err = torch.cat(confs), torch.cat(errs)
    sure = conf >= 0.5
    write_json(
        args.out,
        {
            "data": f"{args.scenes} held-out procedural test scenes, FoD500 optics, {args.size}-px crops, pink",
            "settings": cfg.key(),
            "confidence_rel_error": cfg.confidence_rel_error,
            "seconds": round(time.perf_counter() - t0, 1),
            "all_pixels": {
                "confident_share": round(float(sure.float().mean()), 4),
                "mean_rel_error": round(float(err.mean()), 4),
                "mean_rel_error_confident": round(float(err[sure].mean()), 4) if sure.any() else None,
                "scenes_without_confident_pixels": sum(s["confident_share"] == 0 for s in scenes),
            },
            "calibration": calibration(conf, err),
            "scenes": scenes,
        },
    )


if __name__ == "__main__":
    main()
