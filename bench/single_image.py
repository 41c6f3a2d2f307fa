"""Single-image depth diagnosis: where blur carries depth, and what each network and loss gets there.

    python -m bench.single_image --out bench/single_image.json      (FORCE=1 retrains)

Trains the quickstart configuration (procedural FoD500-like scenes, 64 px, CPU) in several variants through
:mod:`sdgs.cli.report` (each row a ``sdgs fit`` + ``sdgs test`` run folder under ``results/single_image/``),
and writes beside them, in the same run, the no-learning rows (constant = train median, depth from focus,
the splatting stage that teaches the self-supervised rows). Tested on held-out scenes (test seeds), one
defocused image per sample, every focus index; DFV protocol. Writes ``bench/single_image.json``,
``docs/single_image_variants.md`` and its learning curves. The diagnosis page ``docs/single_image.md`` is
:mod:`bench.single_image_oracle`'s.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import torch

from bench.common import write_json
from bench.train import NO_BLUR_RENDER, NO_CONFIDENCE, NO_SIAMESE
from sdgs.cli.report import Experiment, run_table
from sdgs.metrics import DFV_CLIP_M
from sdgs.optics import FOD500, coc_px

QUICKSTART = "lightning_configs/quickstart.yaml"
CURVES = {"trainer.check_val_every_n_epoch": 1}  # a validation per epoch: the learning curve
#: name -> (overrides, rows). "supervised" rows are sdgs.cli.report's: the same networks and budget with ground
#: truth and its default loss (AbsRel). The defaults (log-depth loss clipped like DFV, blur inputs, confidence
#: weighting) are the first row; the others switch one choice to its alternative.
VARIANTS: dict[str, tuple[dict, tuple[str, ...]]] = {
    "default": ({}, ("self-supervised", "supervised")),
    "no blur inputs": ({"model.blur_inputs": False}, ("self-supervised", "supervised")),
    "CoC-space L1, no blur inputs, confidence": (
        {
            "model.target_space": "coc",
            "model.blur_inputs": False,
            "model.loss_far_m": "null",
            "model.use_confidence": True,
        },
        ("self-supervised",),
    ),  # fmt: skip
}
#: the self-supervised signals, each switched off alone from the default (the same overrides as bench.train's)
ABLATIONS: dict[str, dict] = {
    "no teacher's confidence weighting": NO_CONFIDENCE.overrides,
    "no Siamese consistency": NO_SIAMESE.overrides,
    "no blur re-render": NO_BLUR_RENDER.overrides,
    "SDNet only (no DepthNet)": {"model.stage": "sdnet"},
}
STACK_ROWS = ("splatting stage", "depth from focus", "constant")
NETWORK_ROWS = ("self-supervised", "supervised")


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def coc_figure(path: Path) -> None:
    """|CoC| (px) against depth for each focus distance of the FoD500 preset, with the DFV clip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = torch.linspace(*FOD500.depth_range_m, 400)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for d in FOD500.focus_distances_m:
        ax.plot(z, coc_px(z, d, FOD500), label=f"focus {d:g} m")
    ax.axvline(DFV_CLIP_M, color="k", ls="--", lw=0.8, label=f"DFV clip {DFV_CLIP_M:g} m")
    ax.set(xlabel="depth (m)", ylabel="|CoC| (px)", yscale="log", title="FoD500 preset: blur vs depth")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def curve(run: Path) -> list[tuple[int, float]]:
    """(step, val/abs_rel) of a run folder's first fit log."""
    rows = []
    for log in sorted((run / "logs").glob("version_*/metrics.csv")):
        rows += [(int(r["step"]), float(r["val/abs_rel"])) for r in csv.DictReader(log.open()) if r.get("val/abs_rel")]
    return sorted(set(rows))


def curves_figure(runs: dict[str, Path], constant: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, run in runs.items():
        pts = curve(run)
        if pts:
            ax.plot(*zip(*pts), marker="o", ms=3, label=name)
    ax.axhline(constant, color="k", ls="--", lw=0.8, label="constant (train median), test")
    ax.set(xlabel="optimizer step", ylabel="val AbsRel (DFV)", title="Learning curves (quickstart budget)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_page(path: Path, result: dict) -> None:
    """``docs/single_image_variants.md``: the tables of ``result`` (this script's JSON) and the plots beside it."""
    lines = [
        "# Single-image depth: the Lightning variants and signal ablations",
        "",
        f"Produced by `python -m bench.single_image` ({result['wall_seconds']:.0f} s on this machine); numbers from",
        "`bench/single_image.json`. " + result["test_set"] + ". " + result["protocol"] + ".",
        "",
        "## Where blur carries depth",
        "",
        "![CoC vs depth](single_image_coc.png)",
        "",
        "With FoD500 optics the CoC grows steeply in front of each focus plane and saturates behind it: beyond",
        "about 1 m every focus setting gives nearly the same blur, so one image says little about far depth, and",
        "around each focus plane the sign (in front or behind) is ambiguous from blur alone.",
        "",
        "## Rows (held-out test scenes)",
        "",
        "| row | AbsRel ↓ | AbsRel near ↓ | δ1 (%) ↑ | RMSE ↓ |",
        "|---|---|---|---|---|",
    ]
    for name, m in result["summary"].items():
        lines.append(
            f"| {name} | {m['test/abs_rel']:.3f} | {m['test/near/abs_rel']:.3f} | {m['test/delta1']:.1f} | "
            f"{m['test/rmse']:.3f} |"
        )
    focus = ", ".join(f"{d:g}" for d in result["focus_distances_m"])
    lines += ["", f"## AbsRel per focus index (focus distances {focus} m)", "", "| row | " +
              " | ".join(f"k{k}" for k in range(5)) + " |", "|---|" + "---|" * 5]  # fmt: skip
    for name, values in result["abs_rel_per_focus_index"].items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    const, teacher = result["summary"]["constant"], result["summary"]["splatting stage"]
    lines += ["", "## Findings of this run (computed from the numbers above)", ""]
    for name, values in result["abs_rel_per_focus_index"].items():
        m = result["summary"][name]
        lines.append(
            f"- {name}: AbsRel {m['test/abs_rel'] / const['test/abs_rel']:.2f} x the constant's, near "
            f"{m['test/near/abs_rel'] / const['test/near/abs_rel']:.2f} x, "
            f"δ1 {m['test/delta1'] - const['test/delta1']:+.1f} "
            f"points; {m['test/near/abs_rel'] / teacher['test/near/abs_rel']:.1f} x the splatting stage's near AbsRel; "
            f"spread over the five focus indices {max(values) - min(values):.3f}"
        )
    lines += [
        "",
        "A spread over the focus indices far below the errors means the output hardly depends on which image",
        "(and so which blur) the network saw: it has learned a depth prior, not blur → depth. Compare the",
        "constant to the rows only together with that spread.",
    ]
    lines += ["", "## Learning curves", "", "![learning curves](single_image_variants_curves.png)", ""]
    lines += ["Training seconds (splatting fits included where the row needs them): " + ", ".join(
        f"{k} {v:.0f} s" for k, v in result["fit_seconds"].items() if v is not None) + ".", ""]  # fmt: skip
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="bench/single_image.json")
    parser.add_argument("--results", default="results/single_image")
    parser.add_argument("--docs", default="docs")
    parser.add_argument("--ablations", action="store_true", help="also the self-supervised signal ablations")
    parser.add_argument("--page-only", action="store_true", help="rewrite the page from --out's JSON")
    args = parser.parse_args()
    if args.page_only:
        write_page(Path(args.docs) / "single_image_variants.md", json.loads(Path(args.out).read_text()))
        return
    force = os.environ.get("FORCE") == "1"
    t0 = time.perf_counter()
    variants = dict(VARIANTS)
    if args.ablations:
        variants.update({name: (o, ("self-supervised",)) for name, o in ABLATIONS.items()})
    table: dict[str, dict] = {}
    cache = None
    for name, (overrides, rows) in variants.items():
        exp = Experiment(name=slug(name), config=QUICKSTART, overrides={**overrides, **CURVES})
        extra = STACK_ROWS if cache is None else ()
        result = run_table([exp], args.results, force, rows + extra, cache_dir=Path(args.results) / "splat_cache")
        table[name] = result[slug(name)]
        cache = cache or result[slug(name)]
    base = {row: cache[row]["metrics"] for row in STACK_ROWS}
    pick = ("test/abs_rel", "test/near/abs_rel", "test/delta1", "test/rmse")
    trained = [(name, row) for name, v in table.items() for row in NETWORK_ROWS if row in v]
    summary = {f"{n} / {r}": {k: round(table[n][r]["metrics"][k], 4) for k in pick} for n, r in trained}
    summary.update({row: {k: round(base[row][k], 4) for k in pick} for row in STACK_ROWS})
    per_index = {
        f"{n} / {r}": [round(table[n][r]["metrics"][f"test/k{k}/abs_rel"], 4) for k in range(5)] for n, r in trained
    }
    runs = {f"{n} / {r}": Path(args.results) / slug(n) / r.replace(" ", "_") for n, r in trained}
    docs = Path(args.docs)
    coc_figure(docs / "single_image_coc.png")
    curves_figure(runs, base["constant"]["test/abs_rel"], docs / "single_image_variants_curves.png")
    result = {
        "config": f"{QUICKSTART} (procedural FoD500-like, 64 px, CPU budget) + per-variant overrides",
        "test_set": "held-out procedural scenes (test seeds), one defocused image per sample, all 5 focus indices",
        "protocol": "DFV (clip to [0, 1.5] m); near = GT < 1.5 m; constant = median clipped GT of the training split",
        "variants": {name: o for name, (o, _) in variants.items()},
        "summary": summary,
        "abs_rel_per_focus_index": per_index,
        "focus_distances_m": list(FOD500.focus_distances_m),
        "fit_seconds": {f"{n} / {r}": table[n][r].get("fit_seconds") for n, r in trained},
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    write_json(args.out, result)
    write_page(docs / "single_image_variants.md", result)


if __name__ == "__main__":
    main()
