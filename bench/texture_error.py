"""Where single-image depth errs: the error against the scene's local texture (blur shows only on texture).

    python -m bench.texture_error      -> bench/texture_error.json, docs/texture_error.png
                                          (make bench-texture-error, about a minute; after make bench-train)

Reads the models ``make bench-train`` trained (``<results>/<experiment>/<row>/checkpoints/last.ckpt``; a
missing one is skipped with a note) and scores them on the quickstart's held-out test scenes (32 scenes,
64 px, FoD500 optics, the test seed stream of data seed 0) in both texture families: ``pink`` (the training
family) and ``geometric`` (never seen). The constant (median clipped depth of 64 training scenes) and depth
from focus (whole stack) are scored in the same run.

Every pixel is binned by the local contrast of the scene's SHARP texture (:func:`texture_strength`): a
defocused image can only carry depth where there is texture to blur. Per family, bin and model: the pixel
share and the DFV relative error (prediction and ground truth clipped to 1.5 m, as ``sdgs test`` scores
AbsRel), pooled over all pixels of all five focus indices, on all pixels and on near ones (GT < 1.5 m).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import kornia
import torch
from torch import Tensor

from bench.common import write_json
from bench.train import seed_name
from datamodules.base import make_item
from datamodules.procedural import SPLIT_OFFSETS, ProceduralDataset, make_scene, render_scene
from sdgs.baselines import constant_depth, depth_from_focus
from sdgs.metrics import DFV_CLIP_M, error_maps
from sdgs.optics import FOD500

#: local-contrast bin edges (mean Sobel gradient magnitude of the luminance, normalised kernel, 5x5 window).
#: Below 0.005 is flat; each bin's share of the test pixels per family: ``pixel_share`` in bench/texture_error.json.
EDGES = (0.0, 0.005, 0.015, 0.04, float("inf"))
BIN_NAMES = ("flat < 0.005", "weak 0.005-0.015", "medium 0.015-0.04", "strong > 0.04")
#: models trained with seeds 0, 1, 2: label -> (experiment at seed 0, network row). Seed N's run is
#: ``<results>/<seed_name(experiment, N)>/<row>``, labelled ``"<label>, seed N"``; the per-bin mean over the
#: seeds goes into the JSON (``seed_means``) and the figure
SEEDED = {
    "self-supervised": ("procedural", "self-supervised"),
    "supervised": ("procedural", "supervised"),
    "supervised, photometric": ("procedural-supervised-photometric", "supervised"),
    "self-supervised, trained on mixed": ("procedural-mixed", "self-supervised"),
    "supervised, trained on mixed": ("procedural-mixed", "supervised"),
}
SEEDS = (0, 1, 2)
SEED_GROUPS = {label: tuple(label + (f", seed {s}" if s else "") for s in SEEDS) for label in SEEDED}
#: label -> run folder under --results (the rows of make bench-train)
MODELS = {
    **{
        label + (f", seed {s}" if s else ""): f"{seed_name(exp, s)}/{row}"
        for label, (exp, row) in SEEDED.items()
        for s in SEEDS
    },
    "supervised, log-depth loss": "procedural-supervised-log-depth/supervised",
}
#: single-run rows of the figure, after the seed groups
PLOTTED = ("depth from focus (stack)",)
FAMILIES = ("pink", "geometric")


def texture_strength(rgb: Tensor) -> Tensor:
    """Local contrast ``(B, 1, H, W)`` of sharp colours ``(B, 3, H, W)`` in [0, 1]: the 5x5 mean of the
    luminance's Sobel gradient magnitude (normalised kernels: a unit step gives 0.5 on the edge)."""
    grey = kornia.color.rgb_to_grayscale(rgb)
    grad = kornia.filters.spatial_gradient(grey, mode="sobel", normalized=True).norm(dim=2)
    return kornia.filters.box_blur(grad, (5, 5), border_type="replicate")


def binned(pred: Tensor, gt: Tensor, strength: Tensor) -> dict[str, dict]:
    """Per contrast bin of ``strength`` (and ``all``): pixel share; on all pixels and on near ones (GT < 1.5 m)
    the mean relative error; on near ones the mean log ratio (bias: < 0 too near). None where empty.
    All tensors of one shape; ``gt`` > 0. Errors are :func:`sdgs.metrics.error_maps`' DFV maps (depths clipped
    to [0, 1.5] m): relative error, the summand of AbsRel, and log ratio ``ln(p / g)`` (> 0: too far)."""
    maps = error_maps(pred, gt, "dfv")
    err, log_ratio = maps["abs_rel"], maps["log_ratio"]
    near = gt < DFV_CLIP_M
    mean = lambda x, m: round(float(x[m].mean()), 4) if m.any() else None  # noqa: E731
    out = {}
    bins = zip(BIN_NAMES, EDGES[:-1], EDGES[1:], strict=True)
    for name, m in [(n, (strength >= lo) & (strength < hi)) for n, lo, hi in bins] + [("all", strength >= 0)]:
        out[name] = {
            "pixel_share": round(float(m.float().mean()), 4),
            "abs_rel": mean(err, m),
            "near_abs_rel": mean(err, m & near),
            "near_log_ratio": mean(log_ratio, m & near),
        }
    return out


def test_scenes(family: str, n: int, size: int) -> dict[str, Tensor]:
    """The quickstart's held-out scenes in one texture family, as one batch, with the sharp texture's strength."""
    items, strength = [], []
    for i in range(n):
        seed = SPLIT_OFFSETS["test"] + i
        stack, depth, cam = render_scene(seed, size, FOD500, texture=family)
        items.append(make_item(stack, cam.focus_distances_m, depth, cam, i))
        strength.append(texture_strength(make_scene(seed, size, cam, family)["rgb"][None])[0])
    batch = torch.utils.data.default_collate(items)
    batch["strength"] = torch.stack(strength)
    return batch


@torch.no_grad()
def single_image_depth(model, batch: dict[str, Tensor]) -> Tensor:
    """``(N, S, 1, H, W)``: a model's depth from each stack image alone."""
    s = batch["stack"].shape[1]
    cam = batch["camera"]
    return torch.stack(
        [model.predict_depth(batch["stack"][:, k], batch["focus_distance"][:, k], cam)["depth"] for k in range(s)], 1
    )


def seed_means(rows: dict[str, dict]) -> dict[str, dict]:
    """Per seed group of :data:`SEED_GROUPS` with all its rows present: per bin the mean (over seeds) of the
    near relative error and of the near log ratio; the seeds' own values stay in ``rows``."""
    out = {}
    for group, labels in SEED_GROUPS.items():
        if not all(label in rows for label in labels):
            continue
        out[group] = {}
        for b in [*BIN_NAMES, "all"]:
            cell = {}
            for key in ("near_abs_rel", "near_log_ratio"):
                vals = [rows[label][b][key] for label in labels]
                cell[key] = None if None in vals else round(sum(vals) / len(vals), 4)
            out[group][b] = cell
    return out


def plot(result: dict, out: Path) -> None:
    """Near AbsRel per contrast bin: bars = seed means (dots: each seed) and single runs; the constant a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    top = 0.0
    for ax, family in zip(axes, FAMILIES, strict=True):
        rows, means = result["families"][family], result["seed_means"][family]
        bars = [(f"{g} (mean of {len(SEED_GROUPS[g])} seeds)", means[g], SEED_GROUPS[g]) for g in means]
        bars += [(n, rows[n], ()) for n in PLOTTED if n in rows]
        width = 0.8 / len(bars)
        for j, (label, cells, seeds) in enumerate(bars):
            xs = [i + (j - (len(bars) - 1) / 2) * width for i in range(len(BIN_NAMES))]
            ys = [cells[b]["near_abs_rel"] or 0.0 for b in BIN_NAMES]
            top = max(top, *ys)
            ax.bar(xs, ys, width, label=label)
            for seed in seeds:  # each seed as a dot on its group's bar
                ax.plot(xs, [rows[seed][b]["near_abs_rel"] or 0.0 for b in BIN_NAMES], ".", color="black", ms=3)
        # the constant as a line per bin, its value written where it leaves the axes
        for i, b in enumerate(BIN_NAMES):
            y = rows["constant"][b]["near_abs_rel"] or 0.0
            ax.plot(
                [i - 0.45, i + 0.45], [min(y, 1.0)] * 2, color="black", lw=1.5, label="constant" if i == 0 else None
            )
            if y > 1.0:
                ax.annotate(f"{y:.2f}", (i, 1.0), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=7)
        shares = [rows["constant"][b]["pixel_share"] for b in BIN_NAMES]
        ax.set_xticks(range(len(BIN_NAMES)), [f"{b}\n{100 * p:.0f} % of px" for b, p in zip(BIN_NAMES, shares)])
        ax.set_title(f"{family} textures" + (" (training family)" if family == "pink" else " (never seen)"))
        ax.tick_params(axis="x", labelsize=8)
    axes[0].set_ylim(0, max(1.08, top * 1.1))
    axes[0].set_ylabel("near AbsRel (GT < 1.5 m, DFV clip)")
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8)
    fig.suptitle("Single-image error against the local contrast of the sharp texture (32 held-out scenes, 5 focus)")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="results", help="make bench-train's --results folder")
    parser.add_argument("--out", default="bench/texture_error.json")
    parser.add_argument("--plot", default="docs/texture_error.png")
    parser.add_argument("--scenes", type=int, default=32)
    args = parser.parse_args()
    from sdgs.lit.module import SDGSModule, read_checkpoint

    t0 = time.perf_counter()
    models, skipped = {}, []
    for label, run in MODELS.items():
        ckpt = Path(args.results) / run / "checkpoints" / "last.ckpt"
        if not ckpt.is_file():
            skipped.append(f"{label}: no {ckpt}")
            continue
        read_checkpoint(ckpt)  # a one-line error naming the file if it is not an sdgs checkpoint
        models[label] = SDGSModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    if not models:
        raise SystemExit(f"no checkpoints under {args.results}: run `make bench-train` first ({skipped[0]})")
    for note in skipped:
        print(f"skipped {note}")
    train = ProceduralDataset(512, 64, SPLIT_OFFSETS["train"], FOD500)
    constant = constant_depth(train, clip_max=DFV_CLIP_M)
    result: dict = {"families": {}}
    for family in FAMILIES:
        batch = test_scenes(family, args.scenes, 64)
        per_image = lambda x, b=batch: x[:, None].expand_as(b["stack"][:, :, :1])  # noqa: E731 (N,1,H,W) -> (N,S,1,H,W)
        preds = {label: single_image_depth(m, batch) for label, m in models.items()}
        preds["constant"] = per_image(torch.full_like(batch["depth"], constant))
        preds["depth from focus (stack)"] = per_image(depth_from_focus(batch["stack"], batch["focus_distance"]))
        gt, strength = per_image(batch["depth"]), per_image(batch["strength"])
        result["families"][family] = {label: binned(p, gt, strength) for label, p in preds.items()}
    result["seed_means"] = {family: seed_means(rows) for family, rows in result["families"].items()}
    write_json(
        args.out,
        {
            "data": f"{args.scenes} held-out quickstart test scenes per texture family (64 px, FoD500 optics), "
            "all 5 focus indices; models trained on pink by make bench-train",
            "results": args.results,
            "strength": "5x5 mean of the normalised Sobel gradient magnitude of the sharp luminance",
            "constant_m": round(constant, 4),
            "skipped": skipped,
            "seconds": round(time.perf_counter() - t0, 1),
            **result,
        },
    )
    plot(result, Path(args.plot))


if __name__ == "__main__":
    main()
