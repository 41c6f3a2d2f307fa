"""Single-image depth on REAL lens blur: DFD-indoor (Carvalho et al., 3DRW ECCV Workshop 2018) validation scenes.

    make bench-real     # python -m bench.real --data_dir …/dfd_indoor --out bench/real.json

Every row is scored on the same held-out scenes (the last ``val_fraction`` of ``train/`` in capture order: no
model trained or was tuned on them), at full resolution (645x432), on every pixel with depth > 0 (Eigen
protocol: 1e-3 < GT < 10 m, prediction clamped to that range, per-image means, δ as fractions):

* single image, REAL f/2.8 photo at 1.7 m through ``sdgs.predict.predict_photo`` (what ``sdgs predict`` does):
  the self-supervised model (``lightning_configs/dfd_indoor.yaml``, ``make real-ckpt``), its supervised upper
  bound (``dfd_indoor_supervised.yaml``);
* the same self-supervised model on blur SYNTHESISED at 1.7 m from the f/8 photo and depth (the gap between
  synthetic and real blur);
* the no-defocus control (``dfd_indoor_no_defocus.yaml``): the same training with the nearly sharp f/8 photo
  as the networks' input, tested on f/8 photos;
* the same recipe trained with two other seeds (how much of a difference between rows is the training's noise);
* ablations: the student of the wider-window teacher (also with moved copies at 0.7x and 1.4x only); random
  432x432 training crops (every view of a room a different window of it); re-blur inputs; no real photo in
  training (``data.real_in_training=false``: each captured room's real photo replaced by its twin, as the moved
  copies' are); twins as sharp as the thin lens makes them (``data.twin_base_blur_px=0``, without the real
  photos' own blur that ``real_blur`` measures); the teacher fitting the synthesised images only
  (``data.real_in_teacher=false``: the networks still learn from the real photo); fewer moved copies of the
  training rooms (0.7x and 1.4x only), a wider range of them (0.5x to 2.8x, the same mean distance), none (the
  captured rooms only; also for the supervised bound and the control), and, on the captured rooms only, without
  the weights' moving average (at full and half the steps, and with ``model.reblur_inputs``); both networks at
  1/8 of the resolution instead of 1/4 (``model.net_stride=8``); the headline model without the test-time flip
  average and without the output smoothing. The ablations whose command sets ``twin_base_blur_px=0`` were trained with
  sharp twins; the captured rooms alone have no twins;
* no learning, one image: the blur of one photo (Zhuo & Sim 2011) through the thin lens, far of focus assumed;
* no learning, a focal stack: the splatting stage (the teacher) and depth from focus on the training
  configuration's stacks (six synthesised focus distances + the real photo), the teacher with the training
  configuration's settings (the library's sweep defaults) and, as ablations, with the wider sweep window the
  tuning below found best on training scenes and with the other ``data.real_in_teacher``;
* the constant: median ground-truth depth of the training scenes.

Every network row is smoothed as ``sdgs predict`` smooths the headline model's output (the training
configuration's ``model.predict_smooth_px``, a Gaussian on log depth) unless the row says otherwise; each row
records its ``smooth_px``. ``dev_fold`` (:func:`dev_fold`) is where that σ comes from: the headline recipe
trained without the 8 training scenes just before the validation ones (``runs/dfd_indoor-fold``), scored on
those 8 with each σ of :data:`SMOOTH_GRID_PX`. ``diagnosis`` also gives each prediction's AbsRel flattened to
one depth, its own median: how much the shape a network draws inside a room is worth.

``teacher_tuning``: the teacher's sweep variants on every fourth TRAINING scene (ground truth of training scenes
may tune this no-learning stage; the validation scenes above play no part). The training configuration keeps
the library's sweep defaults; the student of the best variant is an ablation row, so the table shows whether a
better teacher made a better student.

``scale_response`` (networks of the f/2.8 photo): the validation rooms moved 0.7, 1.4 and 2 times farther, their
photo synthesised at 1.7 m (what the moved training copies teach): does a network's depth follow the blur, or
does the room's look set it? Each row's ``diagnosis`` gives its per-scene scale errors on the real photos, their
geometric mean and the slope of predicted on true median depth across the rooms.

``real_blur`` (:func:`real_blur_vs_lens`, training scenes only): the real lens against the thin lens, per depth
bin; it calibrates ``data.twin_base_blur_px``. A model row's note names the data options of
:data:`RECIPE_KEYS` its run set unlike the training configuration.

A row whose checkpoint is missing keeps its figures from the ``--out`` file it rewrites, marked ``carried`` (with
the date they were measured and the command that makes the run; ``--no-carry`` drops them): retraining every
ablation takes hours on 2 cores, and a new baseline or teacher row should not wipe them. A row with neither is
listed under ``missing``. The figure (``--figure``) shows three validation scenes: photo | self-supervised
prediction | ground truth, from a checkpoint scored in this run only.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import default_collate

from bench.common import write_json
from datamodules import DFDIndoorDataModule
from datamodules.dfd_indoor import DFDIndoorDataset
from sdgs.baselines import constant_depth, defocus_depth_one_image, depth_from_focus
from sdgs.cli.lightning import parse_config
from sdgs.lit.module import SDGSModule, read_checkpoint
from sdgs.metrics import DepthMetrics, per_image_depth_errors
from sdgs.optics import DFD_INDOOR, gaussian_psf_blur
from sdgs.predict import predict_photo
from sdgs.splatting import SplatFitConfig, fit_batch

TRAINING_CONFIG = "lightning_configs/dfd_indoor.yaml"
WIDER_SWEEP = "window 31 px, eps 3e-2"  # the tuning's best teacher, an ablation of the headline
TEACHER_KEYS = ("sweep", "fit", "iters")  # the teacher settings bench/real.json records
#: data options of the real-photo recipe a row's note names when its run differs (option -> its default)
RECIPE_KEYS = {"real_in_teacher": True, "twin_base_blur_px": 0.0}
#: the teacher's sweep variants of ``teacher_tuning`` (overrides of the training configuration's settings)
TEACHER_VARIANTS = {
    "library default (window 15 px, guided eps 1e-3)": {"sweep_window": 15, "sweep_guided_eps": 1e-3},
    "window 31 px": {"sweep_window": 31, "sweep_guided_eps": 1e-3},
    "window 31 px, eps 1e-2": {"sweep_window": 31, "sweep_guided_eps": 1e-2},
    "window 31 px, eps 3e-2": {"sweep_window": 31, "sweep_guided_eps": 3e-2},
    "window 47 px, eps 1e-2": {"sweep_window": 47, "sweep_guided_eps": 1e-2},
    "window 63 px": {"sweep_window": 63, "sweep_guided_eps": 1e-3},
}

#: the dev fold: a model trained as the headline but on the training scenes less the last ones before the
#: validation scenes (``val_fraction`` 0.2 instead of 0.1), scored on those: where ``model.predict_smooth_px``
#: is chosen, so the validation scenes play no part in it
DEV_FOLD_RUN = "runs/dfd_indoor-fold"
DEV_FOLD_VAL_FRACTION = 0.2
#: the output smoothings (Gaussian σ, px at 645 px width, in log depth) the dev fold compares
SMOOTH_GRID_PX = (0.0, 4.0, 8.0, 16.0, 24.0, 32.0, 48.0, 64.0)

#: label -> (run folder, the photos it is tested on: "N2_8" real f/2.8, "N8" f/8, "synth" synthesised at 1.7 m,
#: ``predict_photo`` options that differ from ``sdgs predict``'s: {} = as ``sdgs predict`` runs the model)
MODELS = {
    "sdgs self-supervised, real f/2.8 photo": ("runs/dfd_indoor-ckpt", "N2_8", {}),
    "same model, without the flip average": ("runs/dfd_indoor-ckpt", "N2_8", {"flip_average": False}),
    "same model, without the output smoothing": ("runs/dfd_indoor-ckpt", "N2_8", {"smooth_px": 0.0}),
    "same model, blur synthesised at 1.7 m": ("runs/dfd_indoor-ckpt", "synth", {}),
    "sdgs supervised (upper bound), real f/2.8 photo": ("runs/dfd_indoor-supervised", "N2_8", {}),
    "no-defocus control: the same training on f/8 photos": ("runs/dfd_indoor-no-defocus", "N8", {}),
    "same recipe, training seed 1": ("runs/dfd_indoor-seed1", "N2_8", {}),
    "same recipe, training seed 2": ("runs/dfd_indoor-seed2", "N2_8", {}),
    "ablation: twins without the photos' own blur (data.twin_base_blur_px=0)": (
        "runs/dfd_indoor-no-twin-blur",
        "N2_8",
        {},
    ),
    "ablation: twins without the photos' own blur, training seed 1": (
        "runs/dfd_indoor-no-twin-blur-seed1",
        "N2_8",
        {},
    ),
    "ablation: teacher with the wider sweep window (31 px, eps 3e-2)": ("runs/dfd_indoor-w31", "N2_8", {}),
    "ablation: the wider-window teacher, moved copies at 0.7x and 1.4x only": (
        "runs/dfd_indoor-w31-scales3",
        "N2_8",
        {},
    ),
    "ablation: both networks at 1/8 resolution (model.net_stride=8)": ("runs/dfd_indoor-stride8", "N2_8", {}),
    "ablation: random 432x432 training crops (full height)": ("runs/dfd_indoor-crop432", "N2_8", {}),
    "ablation: re-blur inputs (Zhuo & Sim ratios)": ("runs/dfd_indoor-reblur", "N2_8", {}),
    "ablation: no real photo in training (synthesised twins only)": ("runs/dfd_indoor-twins", "N2_8", {}),
    "ablation: the teacher fits the synthesised images only, not the real photo": (
        "runs/dfd_indoor-noreal-teacher",
        "N2_8",
        {},
    ),
    "ablation: moved copies at 0.7x and 1.4x only": ("runs/dfd_indoor-scales-0.7-1.4", "N2_8", {}),
    "ablation: moved copies over a wider range (0.5x to 2.8x)": ("runs/dfd_indoor-scales6", "N2_8", {}),
    "ablation: captured rooms only (no moved copies)": ("runs/dfd_indoor-captured", "N2_8", {}),
    "ablation: captured rooms only, supervised": ("runs/dfd_indoor-supervised-captured", "N2_8", {}),
    "ablation: captured rooms only, no-defocus control": ("runs/dfd_indoor-no-defocus-captured", "N8", {}),
    "ablation: captured rooms only, without the weight average": ("runs/dfd_indoor-ckpt-noema", "N2_8", {}),
    "ablation: captured rooms only, no weight average, half the steps": ("runs/dfd_indoor-300", "N2_8", {}),
    "ablation: captured rooms only, no weight average, half the steps, + re-blur inputs": (
        "runs/dfd_indoor-300-reblur",
        "N2_8",
        {},
    ),
}
#: ``--quick`` (``make bench-quick``, ``bench/quick_tier.py``): the README's model rows (headline, synthesised
#: blur, supervised, control) at a quarter of the steps, beside the same baselines.
#: Run folder -> the config fragment on top of dfd_indoor.yaml.
QUICK_STEPS = 150
QUICK_RUNS = {
    "runs/quick-dfd_indoor": None,
    "runs/quick-dfd_indoor-supervised": "lightning_configs/dfd_indoor_supervised.yaml",
    "runs/quick-dfd_indoor-no-defocus": "lightning_configs/dfd_indoor_no_defocus.yaml",
}
QUICK_MODELS = {
    "sdgs self-supervised, real f/2.8 photo (quick tier)": ("runs/quick-dfd_indoor", "N2_8", {}),
    "same model, blur synthesised at 1.7 m (quick tier)": ("runs/quick-dfd_indoor", "synth", {}),
    "sdgs supervised (upper bound), real f/2.8 photo (quick tier)": ("runs/quick-dfd_indoor-supervised", "N2_8", {}),
    "no-defocus control, f/8 photos (quick tier)": ("runs/quick-dfd_indoor-no-defocus", "N8", {}),
}
_FIT = "sdgs fit --config lightning_configs/dfd_indoor.yaml"
_NO_EMA = "(dfd_indoor.yaml without its EMAWeightAveraging callback) "
_CAPTURED = f"{_FIT} --data.init_args.depth_scales=[1.0]"
_SUP = "--config lightning_configs/dfd_indoor_supervised.yaml"
_SHARP = f"{_FIT} --data.init_args.twin_base_blur_px=0"  # twins without the photos' own blur
_CTL = "--config lightning_configs/dfd_indoor_no_defocus.yaml"
MAKE = {
    "runs/dfd_indoor-ckpt": "make real-ckpt",
    "runs/dfd_indoor-supervised": f"{_FIT} {_SUP}",
    "runs/dfd_indoor-no-defocus": f"{_FIT} {_CTL}",
    "runs/dfd_indoor-seed1": f"{_FIT} --seed_everything=1 --trainer.default_root_dir=runs/dfd_indoor-seed1",
    "runs/dfd_indoor-seed2": f"{_FIT} --seed_everything=2 --trainer.default_root_dir=runs/dfd_indoor-seed2",
    DEV_FOLD_RUN: f"{_FIT} --data.init_args.val_fraction={DEV_FOLD_VAL_FRACTION} "
    f"--trainer.default_root_dir={DEV_FOLD_RUN}",
    "runs/dfd_indoor-stride8": f"{_FIT} --model.net_stride=8 --trainer.default_root_dir=runs/dfd_indoor-stride8",
    "runs/dfd_indoor-w31": f"{_SHARP} --splat.sweep_window=31 --splat.sweep_guided_eps=0.03 "
    "--trainer.default_root_dir=runs/dfd_indoor-w31",
    "runs/dfd_indoor-w31-scales3": f"{_SHARP} --data.init_args.depth_scales=[1.0,0.7,1.4] "
    "--splat.sweep_window=31 --splat.sweep_guided_eps=0.03 --trainer.default_root_dir=runs/dfd_indoor-w31-scales3",
    "runs/dfd_indoor-crop432": f"{_SHARP} --data.init_args.crop_size=432 "
    "--trainer.default_root_dir=runs/dfd_indoor-crop432",
    "runs/dfd_indoor-reblur": f"{_SHARP} --model.reblur_inputs=true --trainer.default_root_dir=runs/dfd_indoor-reblur",
    "runs/dfd_indoor-twins": f"{_SHARP} --data.init_args.real_in_training=false "
    "--trainer.default_root_dir=runs/dfd_indoor-twins",
    "runs/dfd_indoor-no-twin-blur": f"{_SHARP} --trainer.default_root_dir=runs/dfd_indoor-no-twin-blur",
    "runs/dfd_indoor-no-twin-blur-seed1": f"{_SHARP} --seed_everything=1 "
    "--trainer.default_root_dir=runs/dfd_indoor-no-twin-blur-seed1",
    "runs/dfd_indoor-noreal-teacher": f"{_FIT} --data.init_args.real_in_teacher=false "
    "--trainer.default_root_dir=runs/dfd_indoor-noreal-teacher",
    "runs/dfd_indoor-scales-0.7-1.4": f"{_SHARP} --data.init_args.depth_scales=[1.0,0.7,1.4] "
    "--trainer.default_root_dir=runs/dfd_indoor-scales-0.7-1.4",
    "runs/dfd_indoor-scales6": f"{_SHARP} --data.init_args.depth_scales=[1.0,0.7,1.4,2.0,0.5,2.8] "
    "--trainer.default_root_dir=runs/dfd_indoor-scales6",
    "runs/dfd_indoor-captured": f"{_CAPTURED} --trainer.default_root_dir=runs/dfd_indoor-captured",
    "runs/dfd_indoor-supervised-captured": f"{_CAPTURED} {_SUP} "
    "--trainer.default_root_dir=runs/dfd_indoor-supervised-captured",
    "runs/dfd_indoor-no-defocus-captured": f"{_CAPTURED} {_CTL} "
    "--trainer.default_root_dir=runs/dfd_indoor-no-defocus-captured",
    "runs/dfd_indoor-ckpt-noema": f"{_NO_EMA}{_CAPTURED} --trainer.default_root_dir=runs/dfd_indoor-ckpt-noema",
    "runs/dfd_indoor-300": f"{_NO_EMA}{_CAPTURED} --trainer.max_steps=300 "
    "--trainer.default_root_dir=runs/dfd_indoor-300",
    "runs/dfd_indoor-300-reblur": f"{_NO_EMA}{_CAPTURED} --trainer.max_steps=300 --model.reblur_inputs=true "
    "--trainer.default_root_dir=runs/dfd_indoor-300-reblur",
    **{run: "make bench-quick" for run in QUICK_RUNS},
}


def recipe_note(run: Path, recipe: dict) -> str:
    """What a run's saved ``config.yaml`` did differently from the training configuration's ``recipe`` (data options
    of :data:`RECIPE_KEYS`; an option absent from an older run's file had its default), where it matters: the
    teacher's options not for a run without a teacher (supervised) or without a real photo to fit."""
    path = run / "config.yaml"
    if not path.is_file():
        return ""
    config = yaml.safe_load(path.read_text())
    data = (config.get("data") or {}).get("init_args") or {}
    if not data.get("real_in_stack"):
        return ""
    teacherless = bool((config.get("model") or {}).get("supervised")) or not data.get("real_in_training", True)
    deviations = [
        f"data.{key}={data.get(key, default)}"
        for key, default in RECIPE_KEYS.items()
        if data.get(key, default) != recipe[key] and not (teacherless and key == "real_in_teacher")
    ]
    return f"; {', '.join(deviations)}" if deviations else ""


def carried_results(path: Path) -> dict:
    """What a rerun keeps of an earlier ``bench/real.json`` at ``path`` (nothing if absent): its model rows
    (``rows``) and its ``dev_fold``, each with ``carried``: the date its figures were measured (an entry carried
    before keeps its first date)."""
    if not path.is_file():
        return {"rows": {}}
    previous = json.loads(path.read_text())
    mark = lambda entry: {**entry, "carried": entry.get("carried", previous.get("date", "unknown date"))}  # noqa: E731
    kept = {
        "rows": {
            label: mark(row)
            for label, row in previous.get("rows", {}).items()
            if "command" in row  # model rows only: the baselines are measured anew every run
        }
    }
    if previous.get("dev_fold"):
        kept["dev_fold"] = mark(previous["dev_fold"])
    return kept


def score(preds: list[torch.Tensor], gts: list[torch.Tensor]) -> dict[str, float]:
    """AbsRel, RMSE (m), δ1 (fraction) of ``(1, H, W)`` predictions against ``(1, H, W)`` ground truth."""
    metric = DepthMetrics("eigen")
    for pred, gt in zip(preds, gts):
        metric.update(pred[None].float(), gt[None].float())
    return {k: round(float(v), 4) for k, v in metric.compute().items() if k in ("abs_rel", "rmse", "delta1")}


def valid_median(depth: torch.Tensor) -> float:
    """Median depth (m, 2 decimals) of the pixels with depth > 0."""
    return round(float(depth[depth > 0].median()), 2)


def log_slope(x: torch.Tensor, y: torch.Tensor) -> float:
    """Least-squares slope of ``log y`` on ``log x`` (same-shape positive tensors), 2 decimals."""
    lx, ly = x.double().log(), y.double().log()
    lx, ly = lx - lx.mean(), ly - ly.mean()
    return round(float((lx * ly).sum() / (lx * lx).sum()), 2)


def scale_split(preds: list[torch.Tensor], gts: list[torch.Tensor]) -> dict:
    """Where the error lies: each scene's scale, median GT / median prediction over pixels with depth > 0, and
    the AbsRel left once each prediction is rescaled by it (the error of the depth's shape alone). And the
    AbsRel of each prediction flattened to one depth, its own median (no ground truth read): lower than the
    prediction's when the shape it predicts within a room costs more than it gains.

    Across scenes: the scales' geometric mean (the model's bias; > 1: too near) and the least-squares slope of
    log median prediction on log median GT (1: each room's own scale is read; 0: one depth for every room).
    """
    gt_med = torch.stack([g[g > 0].median() for g in gts]).double()
    pred_med = torch.stack([p[g > 0].median() for p, g in zip(preds, gts)]).double()
    ratios = (gt_med / pred_med).tolist()
    shape = score([p * r for p, r in zip(preds, ratios)], gts)["abs_rel"]
    return {
        "scale_gt_over_pred": [round(r, 3) for r in ratios],
        "abs_rel_after_per_scene_scale": shape,
        "abs_rel_flat_at_own_median": score([torch.full_like(p, float(p.median())) for p in preds], gts)["abs_rel"],
        "scale_bias": round(float((gt_med / pred_med).log().mean().exp()), 3),
        "scale_slope": log_slope(gt_med, pred_med),
    }


#: the factors the validation rooms are moved by in ``scale_response`` (1 = as captured)
RESPONSE_SCALES = (0.7, 1.0, 1.4, 2.0)


def moved_rooms(dm: DFDIndoorDataModule) -> list[dict]:
    """The validation rooms moved by each ``RESPONSE_SCALES`` factor, one image each synthesised at ``dm``'s focus:
    item ``j * n + i`` is room ``i`` at ``RESPONSE_SCALES[j]``."""
    val = dm.dataset("val")
    moved = DFDIndoorDataset(
        val.pairs, camera=val.camera, width=val.width, synth_camera=val.synth_camera, num_layers=val.num_layers,
        depth_scales=RESPONSE_SCALES,
    )  # fmt: skip
    return [moved.load(i) for i in range(len(moved))]


def scale_response(model: SDGSModule, items: list[dict], **predict_opts) -> dict:
    """Does the prediction follow the blur? The same held-out rooms moved ``k`` times farther (``moved_rooms``):
    per ``k``, the geometric mean over rooms of median prediction / the captured room's median prediction
    (ideal: ``k``), the AbsRel, and the slope of log prediction on log ``k`` (1: depth follows the blur; 0: the
    room's look alone sets it). ``predict_opts``: :func:`~sdgs.predict.predict_photo`'s."""
    n = len(items) // len(RESPONSE_SCALES)
    preds = [
        torch.from_numpy(
            predict_photo(model, x["stack"][-1].permute(1, 2, 0).numpy(), float(x["focus_distance"][-1]), DFD_INDOOR,
                          **predict_opts)
        )[None]
        for x in items
    ]  # fmt: skip
    med = torch.stack([p[x["depth"] > 0].median() for p, x in zip(preds, items)]).double().view(len(RESPONSE_SCALES), n)
    rel = med / med[RESPONSE_SCALES.index(1.0)]  # (K, n)
    k = torch.tensor(RESPONSE_SCALES, dtype=torch.float64)[:, None].expand_as(rel)
    return {
        "k": list(RESPONSE_SCALES),
        "prediction_over_captured": [round(float(v), 3) for v in rel.log().mean(1).exp()],
        "abs_rel": [score(preds[j * n : (j + 1) * n], [x["depth"] for x in items[j * n : (j + 1) * n]])["abs_rel"]
                    for j in range(len(RESPONSE_SCALES))],
        "slope": log_slope(k, rel),
    }  # fmt: skip


def dev_fold(data_dir: str, validation: list[str], ckpt: Path) -> dict:
    """Score the dev-fold model ``ckpt`` on the dev scenes (held out of its training, not among the ``validation``
    names) with each :data:`SMOOTH_GRID_PX` output smoothing, beside the constant of its own training scenes.
    ``chosen_px``: the σ of the lowest AbsRel (the smaller σ on a tie)."""
    dm = DFDIndoorDataModule(data_dir, aperture="N2_8", val_fraction=DEV_FOLD_VAL_FRACTION, batch_size=1)
    held, train = dm.dataset("val"), dm.dataset("train")
    validation = set(validation)
    dev = [i for i in range(len(held)) if held.pairs[i][1].name not in validation]
    if not dev:
        raise RuntimeError(f"no dev scenes: val_fraction {DEV_FOLD_VAL_FRACTION} holds out the validation scenes only")
    items = [held.load(i) for i in dev]
    gts = [x["depth"] for x in items]
    const = constant_depth(train, max_samples=10_000)
    model = SDGSModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    scores = {}
    for sigma in SMOOTH_GRID_PX:
        preds = [
            torch.from_numpy(predict_photo(model, x["stack"][0].permute(1, 2, 0).numpy(), float(x["focus_distance"][0]),
                                           DFD_INDOOR, smooth_px=sigma))[None]
            for x in items
        ]  # fmt: skip
        scores[f"{sigma:g}"] = score(preds, gts)
    chosen = min(SMOOTH_GRID_PX, key=lambda s: (scores[f"{s:g}"]["abs_rel"], s))
    return {
        "run": str(ckpt.parents[1]),
        "training_scenes": len(train.pairs),
        "scenes": [held.pairs[i][1].name.removesuffix(".png") for i in dev],
        "constant": {**score([torch.full_like(g, const) for g in gts], gts), "note": f"{const:.3f} m"},
        "smooth_px": scores,
        "chosen_px": chosen,
    }


@functools.lru_cache(maxsize=1)
def training_config():
    """:data:`TRAINING_CONFIG` as ``sdgs fit`` parses it, parsed once (read it, do not change it)."""
    return parse_config(["--config", TRAINING_CONFIG])


def training_setup() -> tuple[dict, SplatFitConfig]:
    """The training configuration's stacks (its ``synth_focus_m`` (m) and :data:`RECIPE_KEYS` data options) and
    its teacher's settings."""
    config = training_config()
    known = {f.name for f in fields(SplatFitConfig)}
    teacher = SplatFitConfig(**{k: v for k, v in config.splat.as_dict().items() if k in known})
    data = config.data.init_args
    return {"synth_focus_m": list(data.synth_focus_m), **{k: data[k] for k in RECIPE_KEYS}}, teacher


def fit_teacher(items: list[dict], cfg: SplatFitConfig) -> tuple[list[torch.Tensor], float]:
    """The splatting stage's depth ``(1, H, W)`` (m) of each item's stack, and its seconds per scene."""
    t0 = time.perf_counter()
    depths = []
    for x in items:
        b = default_collate([x])
        depths.append(fit_batch(b, cfg).depth[0])
    return depths, round((time.perf_counter() - t0) / max(1, len(items)), 2)


def other_real_fit(items: list[dict]) -> tuple[str, list[dict]]:
    """Items of stacks with their real photo (the last image) as captured, the photo's ``fit_images`` flag flipped:
    the teacher of the other ``data.real_in_teacher``, and a label saying which it is."""
    if not all("fit_images" in x for x in items):
        raise ValueError("other_real_fit needs stacks with a real photo (data.real_in_stack=true)")
    flipped = []
    for x in items:
        fit = x["fit_images"].clone()
        fit[-1] = ~fit[-1]
        flipped.append({**x, "fit_images": fit})
    fitted = bool(flipped[0]["fit_images"][-1])
    return ("the real photo fitted too" if fitted else "the real photo left out of the fit"), flipped


def teacher_tuning(dm: DFDIndoorDataModule, cfg: SplatFitConfig, every: int = 4) -> dict:
    """``TEACHER_VARIANTS`` of ``cfg`` scored on every ``every``-th training scene as captured."""
    train = dm.dataset("train")
    items = [train.load(i) for i in range(1, len(train), every)]
    gts = [x["depth"] for x in items]
    out = {}
    for label, overrides in TEACHER_VARIANTS.items():
        depths, sec = fit_teacher(items, replace(cfg, **overrides))
        out[label] = {**score(depths, gts), "seconds_per_scene": sec}
    label, flipped = other_real_fit(items)
    depths, sec = fit_teacher(flipped, cfg)
    out[f"library default, {label}"] = {**score(depths, gts), "seconds_per_scene": sec}
    return {"scenes": f"every {every}th training scene ({len(items)}), as captured", "rows": out}


def register_shift(a: np.ndarray, b: np.ndarray, up: int = 8) -> tuple[float, float]:
    """``(dy, dx)`` px with ``a(x) ≈ b(x - d)``: phase correlation of two grey ``(H, W)`` images, ``1/up`` px steps
    (the cross-power spectrum zero-padded ``up`` times)."""
    fa, fb = np.fft.fft2(a - a.mean()), np.fft.fft2(b - b.mean())
    cross = fa * np.conj(fb)
    cross /= np.abs(cross) + 1e-9
    h, w = a.shape
    padded = np.zeros((h * up, w * up), complex)
    top, left = (h * up - h) // 2, (w * up - w) // 2
    padded[top : top + h, left : left + w] = np.fft.fftshift(cross)
    corr = np.abs(np.fft.ifft2(np.fft.ifftshift(padded)))
    y, x = np.unravel_index(int(corr.argmax()), corr.shape)
    return (y if y < h * up / 2 else y - h * up) / up, (x if x < w * up / 2 else x - w * up) / up


def shifted(image: torch.Tensor, dy: float, dx: float) -> torch.Tensor:
    """``image(x + d)`` of a ``(..., H, W)`` image, sub-pixel (Fourier phase ramp; wraps at the borders)."""
    h, w = image.shape[-2:]
    ramp = torch.exp(2j * torch.pi * (torch.fft.fftfreq(h)[:, None] * dy + torch.fft.fftfreq(w)[None] * dx))
    return torch.fft.ifft2(torch.fft.fft2(image.double()) * ramp).real.to(image.dtype)


#: Gaussian σ (px) tried per depth bin by :func:`real_blur_vs_lens`
BLUR_SIGMAS_PX = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5)


def real_blur_vs_lens(ds: DFDIndoorDataset, bins: int = 15, border: int = 10) -> dict:
    """How the real f/2.8 photos are blurred, against the thin lens: per depth bin, the Gaussian σ that best turns
    each TRAINING scene's f/8 photo into its f/2.8 photo, as captured and after registering the pair.

    ``ds``: a DFD-indoor dataset with ``real_images``. Exposure is matched by a gain and offset fitted on heavily
    smoothed images (independent of the blur); pixels: valid depth, textured, no depth edge within 7 px (one bin
    each), ``border`` px from the frame (the registration wraps). The best σ of a bin is the parabola's vertex
    through the squared errors around the minimum. The lens's prediction: σ = ``SIGMA_PER_COC`` × the f/2.8 CoC
    less the f/8 photo's own (in quadrature)."""
    import kornia
    import torch.nn.functional as F

    from sdgs.io import read_depth, read_image
    from sdgs.optics import SIGMA_PER_COC, coc_px

    lo, hi = DFD_INDOOR.depth_range_m[0] + 0.4, 6.5
    edges = 1 / np.linspace(1 / lo, 1 / hi, bins + 1)  # even in inverse depth, as blur is
    err = {kind: np.zeros((bins, len(BLUR_SIGMAS_PX))) for kind in ("as captured", "registered")}
    count, shifts = np.zeros(bins), []
    for (sharp_path, depth_path), real_path in zip(ds.pairs, ds.real_images):
        sharp = torch.from_numpy(read_image(sharp_path)).permute(2, 0, 1).mean(0)
        real = torch.from_numpy(read_image(real_path)).permute(2, 0, 1).mean(0)
        depth = torch.from_numpy(read_depth(depth_path))
        dy, dx = register_shift(sharp.numpy(), real.numpy())
        shifts.append((dy, dx))
        smooth = lambda t: gaussian_psf_blur(t[None, None], 8.0)[0, 0]  # noqa: E731
        gain = torch.linalg.lstsq(
            torch.stack([smooth(sharp).flatten(), torch.ones(sharp.numel())], 1), smooth(real).flatten()[:, None]
        ).solution.flatten()
        sharp = sharp * gain[0] + gain[1]
        grad = kornia.filters.spatial_gradient(sharp[None, None]).pow(2).sum(2).sqrt()
        textured = kornia.filters.box_blur(grad, (7, 7))[0, 0] > 0.02
        d = depth[None, None]
        dmax = F.max_pool2d(d, 7, 1, 3)[0, 0]
        dmin = -F.max_pool2d(-torch.where(d > 0, d, torch.full_like(d, 1e3)), 7, 1, 3)[0, 0]
        ok = (depth > 0) & textured & (dmax < 1.15 * dmin)
        ok[:border], ok[-border:], ok[:, :border], ok[:, -border:] = False, False, False, False
        bin_of = torch.from_numpy(np.digitize(depth.numpy(), edges) - 1)
        masks = [ok & (bin_of == q) for q in range(bins)]
        count += [int(m.sum()) for m in masks]
        for kind, source in (("as captured", sharp), ("registered", shifted(sharp, dy, dx))):
            for j, sigma in enumerate(BLUR_SIGMAS_PX):
                out = source[None, None]
                if sigma > 0:
                    out = gaussian_psf_blur(out, sigma)
                sq = kornia.filters.box_blur((out - real).pow(2), (5, 5))[0, 0]
                err[kind][:, j] += [float(sq[m].sum()) for m in masks]
    sig = np.asarray(BLUR_SIGMAS_PX)

    def vertex(e: np.ndarray) -> float:
        j = int(np.argmin(e))
        if not 0 < j < len(e) - 1:
            return float(sig[j])
        p = np.polyfit(sig[j - 1 : j + 2], e[j - 1 : j + 2], 2)
        return float(-p[1] / (2 * p[0]))

    f8 = DFD_INDOOR.f_number / 8.0  # the f/8 CoC relative to the f/2.8 one
    out_rows = []
    for q in np.flatnonzero(count >= 2000):
        mid = 2 / (1 / edges[q] + 1 / edges[q + 1])
        c = float(coc_px(torch.tensor(mid), DFD_INDOOR.focus_distances_m[0], DFD_INDOOR).abs())
        out_rows.append({
            "depth_m": round(mid, 2), "pixels": int(count[q]), "coc_px": round(c, 2),
            "lens_sigma_px": round(SIGMA_PER_COC * c * (1 - f8**2) ** 0.5, 2),
            **{f"sigma_{kind.replace(' ', '_')}_px": round(vertex(err[kind][q] / count[q]), 2) for kind in err},
        })  # fmt: skip
    dx_abs = np.abs([s[1] for s in shifts])
    dy_abs = np.abs([s[0] for s in shifts])
    return {
        "scenes": f"the {len(shifts)} training scenes (f/8 and f/2.8 photos of each, their depth)",
        "shift_px": {
            "median_abs_dx": round(float(np.median(dx_abs)), 2),
            "max_abs_dx": round(float(dx_abs.max()), 2),
            "median_abs_dy": round(float(np.median(dy_abs)), 2),
            "max_abs_dy": round(float(dy_abs.max()), 2),
        },  # fmt: skip
        "bins": out_rows,
    }


def data_modules(data_dir: str, stacks: dict) -> dict[str, DFDIndoorDataModule]:
    """The validation photos of each kind, and the training configuration's stacks."""
    kw = {"data_dir": data_dir, "batch_size": 1}
    synth = {"synthesize": True, "synth_camera": "dfd_indoor", "num_layers": 16}
    return {
        "N2_8": DFDIndoorDataModule(aperture="N2_8", **kw),
        "N8": DFDIndoorDataModule(aperture="N8", **kw),
        "synth": DFDIndoorDataModule(synth_focus_m=[DFD_INDOOR.focus_distances_m[0]], **synth, **kw),
        "stack": DFDIndoorDataModule(real_in_stack=True, **stacks, **synth, **kw),
    }


def figure(path: Path, photos: list[np.ndarray], preds: list[np.ndarray], gts: list[np.ndarray], rows: dict) -> None:
    """Photo | prediction | ground truth per scene, one colour scale for all, a colour bar in metres."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    valid = np.concatenate([g[g > 0] for g in gts])
    vmin, vmax = float(np.percentile(valid, 1)), float(np.percentile(valid, 99))
    n = len(photos)
    fig, axes = plt.subplots(n, 3, figsize=(11, 2.55 * n + 0.7), squeeze=False)
    for i in range(n):
        gt = np.ma.masked_where(gts[i] <= 0, gts[i])
        errors, _ = per_image_depth_errors(
            torch.from_numpy(preds[i])[None, None], torch.from_numpy(gts[i])[None, None], "eigen"
        )
        rel = float(errors["abs_rel"][0])
        axes[i, 0].imshow(photos[i])
        axes[i, 1].imshow(preds[i], cmap="magma_r", vmin=vmin, vmax=vmax)
        im = axes[i, 2].imshow(gt, cmap="magma_r", vmin=vmin, vmax=vmax)
        axes[i, 1].set_title(f"sdgs, one photo (AbsRel {rel:.3f})", fontsize=9)
        for ax in axes[i]:
            ax.axis("off")
    axes[0, 0].set_title("real f/2.8 photo (focus 1.7 m)", fontsize=9)
    axes[0, 2].set_title("ground truth (holes blank)", fontsize=9)
    fig.colorbar(im, ax=axes, shrink=0.8, label="depth (m)")
    ours = rows["sdgs self-supervised, real f/2.8 photo"]
    const = rows["constant (median training depth)"]
    fig.suptitle(
        f"Held-out DFD-indoor scenes, real lens blur. All validation scenes: sdgs AbsRel {ours['abs_rel']:.3f}, "
        f"RMSE {ours['rmse']:.2f} m, δ1 {ours['delta1']:.2f}; constant {const['abs_rel']:.3f}, "
        f"{const['rmse']:.2f} m, {const['delta1']:.2f}",
        fontsize=9,
    )
    from sdgs.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default=os.environ.get("SDGS_DFD_INDOOR_DIR", "../shared/data/dfd_indoor"))
    parser.add_argument("--runs", default=".", help="folder holding runs/<experiment>/checkpoints/last.ckpt")
    parser.add_argument("--out", default="bench/real.json")
    parser.add_argument("--figure", default="docs/real_photos.png")
    parser.add_argument("--figure-scenes", type=int, nargs="+", default=[0, 3, 6], help="validation indices")
    parser.add_argument("--quick", action="store_true", help="the quick tier's model rows (no figure)")
    parser.add_argument(
        "--no-carry", dest="carry", action="store_false", help="drop the rows of absent checkpoints (default: kept)"
    )
    args = parser.parse_args()
    if not Path(args.data_dir).is_dir():
        raise SystemExit(f"bench.real: no DFD-indoor data at {args.data_dir}; set --data_dir or SDGS_DFD_INDOOR_DIR")
    models = QUICK_MODELS if args.quick else MODELS
    t0 = time.perf_counter()
    stacks, teacher_cfg = training_setup()
    dms = data_modules(args.data_dir, stacks)
    val = {kind: dm.dataset("val") for kind, dm in dms.items()}
    names = {kind: [ds.pairs[i][1].name for i in range(len(ds))] for kind, ds in val.items()}
    if any(v != names["N2_8"] for v in names.values()):
        raise RuntimeError("the validation scenes differ between aperture folders; check the data folder")
    items = {kind: [ds.load(i) for i in range(len(ds))] for kind, ds in val.items()}
    gts = [x["depth"] for x in items["N2_8"]]
    const = constant_depth(dms["N2_8"].dataset("train"), max_samples=10_000)
    train = dms["N2_8"].dataset("train")
    scene_medians = {
        "train": sorted(valid_median(train.load(i)["depth"]) for i in range(len(train))),
        "validation": [valid_median(g) for g in gts],
    }
    rows: dict[str, dict] = {"constant (median training depth)": score([torch.full_like(g, const) for g in gts], gts)}
    rows["constant (median training depth)"].update(note=f"{const:.3f} m", input="none")

    real = items["N2_8"]
    one = [defocus_depth_one_image(x["stack"][:1], x["focus_distance"][:1], x["camera"])[0] for x in real]
    rows["no learning: blur of one photo (Zhuo & Sim), far of focus"] = score(one, gts)

    teacher, _ = fit_teacher(items["stack"], teacher_cfg)
    rows["no learning, focal stack: splatting stage (the teacher)"] = {**score(teacher, gts), "input": "focal stack"}
    wider = replace(teacher_cfg, **TEACHER_VARIANTS[WIDER_SWEEP])
    rows["ablation: the teacher with the wider sweep window (31 px, eps 3e-2)"] = {
        **score(fit_teacher(items["stack"], wider)[0], gts),
        "input": "focal stack",
    }
    label, flipped = other_real_fit(items["stack"])
    rows[f"ablation: the teacher, {label}"] = {
        **score(fit_teacher(flipped, teacher_cfg)[0], gts),
        "input": "focal stack",
    }
    dff = [depth_from_focus(x["stack"][None], x["focus_distance"][None])[0] for x in items["stack"]]
    rows["no learning, focal stack: depth from focus"] = {**score(dff, gts), "input": "focal stack"}

    moved = [] if args.quick else moved_rooms(dms["synth"])
    earlier = carried_results(Path(args.out)) if args.carry else {"rows": {}}
    missing, photos, figure_preds = {}, [], []
    # every network with the training configuration's output smoothing unless its row says otherwise, so rows
    # compare networks (sdgs predict reads a checkpoint's own model.predict_smooth_px)
    smooth = float(training_config().model.predict_smooth_px)
    for label, (run, kind, row_opts) in models.items():
        opts = {"smooth_px": smooth, **row_opts}
        ckpt = Path(args.runs) / run / "checkpoints" / "last.ckpt"
        if not ckpt.is_file():
            if label in earlier["rows"]:
                rows[label] = {**earlier["rows"][label], "command": MAKE[run]}
            else:
                missing[label] = f"{ckpt} not found: {MAKE[run]}"
            continue
        read_checkpoint(ckpt)
        model = SDGSModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
        preds = []  # the f/8 control keeps the f/2.8 camera label it was trained with
        for x in items[kind]:
            rgb = x["stack"][0].permute(1, 2, 0).numpy()
            depth = predict_photo(model, rgb, float(x["focus_distance"][0]), DFD_INDOOR, **opts)
            preds.append(torch.from_numpy(depth)[None])
        steps = torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"]
        note = f"{run}, {steps} training steps{recipe_note(ckpt.parents[1], stacks)}"
        rows[label] = {**score(preds, gts), "note": note, "command": MAKE[run], "smooth_px": opts["smooth_px"]}
        rows[label]["diagnosis"] = scale_split(preds, gts)
        if moved and kind == "N2_8" and not row_opts:  # networks of the f/2.8 photo, as sdgs predict runs them
            rows[label]["scale_response"] = scale_response(model, moved, smooth_px=smooth)
        if label == next(iter(models)):
            photos = [real[i]["stack"][0].permute(1, 2, 0).numpy() for i in args.figure_scenes]
            figure_preds = [preds[i][0].numpy() for i in args.figure_scenes]
    fold_ckpt = Path(args.runs) / DEV_FOLD_RUN / "checkpoints" / "last.ckpt"
    if args.quick:
        dev = None
    elif fold_ckpt.is_file():
        dev = {**dev_fold(args.data_dir, names["N2_8"], fold_ckpt), "config_px": smooth}
    elif "dev_fold" in earlier:
        dev = earlier["dev_fold"]
    else:
        dev, missing["dev fold"] = None, f"{fold_ckpt} not found: {MAKE[DEV_FOLD_RUN]}"
    if figure_preds and not args.quick:
        figure(Path(args.figure), photos, figure_preds, [gts[i][0].numpy() for i in args.figure_scenes], rows)
    base = rows["constant (median training depth)"]
    write_json(
        args.out,
        {
            "data": f"DFD-indoor, {len(gts)} held-out scenes, 645x432",
            "scenes": "the last scenes of train/ in capture order, never trained or tuned on: "
            + ", ".join(n.removesuffix(".png") for n in names["N2_8"]),
            "camera": "dfd_indoor: f 35 mm, real photos at f/2.8 (N2_8) or f/8 (N8), focus 1.7 m, 36 um pixels",
            "protocol": "Eigen: every pixel with 1e-3 < GT < 10 m (all depth > 0), prediction clamped to that range, "
            "per-image means, delta as fractions; networks through sdgs.predict.predict_photo (the photo and its "
            "mirror image averaged in log depth, then smoothed as the row's smooth_px says: the training "
            "configuration's model.predict_smooth_px unless the row says otherwise)",
            "rows": rows,
            "ratios_to_constant": {
                label: {k: round(r[k] / base[k], 3) for k in ("abs_rel", "rmse")}
                for label, r in rows.items()
                if label != "constant (median training depth)"
            },
            "dev_fold": dev,
            "scene_median_depth_m": scene_medians,
            "teacher_settings": {k: v for k, v in asdict(teacher_cfg).items() if k.startswith(TEACHER_KEYS)},
            "teacher_tuning": None if args.quick else teacher_tuning(dms["stack"], teacher_cfg),
            "real_blur": None if args.quick else real_blur_vs_lens(dms["stack"].dataset("train")),
            "missing": missing,
            "seconds": round(time.perf_counter() - t0, 1),
        },
    )


if __name__ == "__main__":
    main()
