"""Single-image models on REAL defocus blur: DFD-indoor f/2.8 photos (Carvalho et al. 2018), one image each.

    python -m bench.single_image_real --ckpt NAME=PATH [--ckpt ...] --out bench/single_image_real.json

Each checkpoint (trained elsewhere, e.g. by ``make bench-single-image`` on procedural FoD500-like scenes) predicts
depth from one real f/2.8 photo at its native 645x432 with the ``dfd_indoor`` camera (f 35 mm, focus 1.7 m,
36 um pixels), beside the constant (median GT of the training split). Evaluated on the validation split of
``DFDIndoorDataModule`` (the last 10 % of ``train/`` in capture order; the public ``test/`` split is not on
this machine). Eigen protocol (1e-3 < GT < 10 m, prediction clamped, per-image mean, δ as fractions).
The data folder comes from ``--data_dir`` or ``SDGS_DFD_INDOOR_DIR``; the repo never needs it.
"""

from __future__ import annotations

import argparse
import os

import torch
from torch.utils.data import default_collate

from bench.common import write_json
from datamodules import DFDIndoorDataModule
from sdgs.baselines import constant_depth
from sdgs.lit.module import SDGSModule, read_checkpoint
from sdgs.metrics import DepthMetrics


def evaluate(preds_and_gt) -> dict:
    metric = DepthMetrics("eigen")
    for pred, gt in preds_and_gt:
        metric.update(pred, gt)
    return {k: round(float(v), 4) for k, v in metric.compute().items() if k in ("abs_rel", "rmse", "delta1")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ckpt", action="append", default=[], help="NAME=PATH of a trained sdgs checkpoint")
    parser.add_argument("--data_dir", default=os.environ.get("SDGS_DFD_INDOOR_DIR", "../shared/data/dfd_indoor"))
    parser.add_argument("--out", default="bench/single_image_real.json")
    args = parser.parse_args()
    dm = DFDIndoorDataModule(data_dir=args.data_dir, aperture="N2_8", batch_size=1)
    val, train = dm.dataset("val"), dm.dataset("train")
    items = [val.load(i) for i in range(len(val))]
    const = constant_depth(train, max_samples=len(train))
    rows = {"constant (median train depth)": evaluate((torch.full_like(x["depth"][None], const), x["depth"][None])
                                                      for x in items)}  # fmt: skip
    for spec in args.ckpt:
        name, _, path = spec.partition("=")
        read_checkpoint(path)
        model = SDGSModule.load_from_checkpoint(path, map_location="cpu").eval()
        with torch.no_grad():
            preds = [
                (model.predict_depth(b["stack"][:, 0], b["focus_distance"][:, 0], b["camera"])["depth"], b["depth"])
                for b in (default_collate([x]) for x in items)
            ]
        rows[name] = evaluate(preds)
    write_json(
        args.out,
        {
            "data": f"DFD-indoor f/2.8 real photos, validation split of train/ ({len(items)} images, 645x432)",
            "camera": "dfd_indoor preset: f 35 mm, N 2.8, focus 1.7 m, 36 um pixels at 645 px",
            "protocol": "Eigen: 1e-3 < GT < 10 m, prediction clamped to that range, per-image mean, delta as fractions",
            "constant_m": round(const, 4),
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
