"""Generate the results pages from the benchmark JSONs: every figure in them comes from the data.

    python -m docs.make_results            (make docs) rewrites docs/results.md, docs/benchmarks.md,
                                           docs/single_image.md, the README's figure and results-table blocks
                                           and the generated blocks of docs/gpu.md and docs/splat_real.md
    python -m docs.make_results --check    exits 1 and names the files that are not current

Sources (each optional: a missing JSON drops its rows and sections, nothing else): ``bench/real.json`` (real
photographs), ``bench/train.json`` and ``bench/train_long.json`` (``make bench-train``,
``make bench-train-long``), ``bench/splat.json``, ``bench/splat_real.json``, ``bench/confidence.json``,
``bench/texture_error.json``, ``bench/single_image_real.json``, ``bench/data.json``, ``bench/render.json``,
``bench/predict_stack.json``, ``bench/single_image_oracle.json`` (the page ``docs/single_image.md``, laid out
by :func:`bench.single_image_oracle.single_image_page`), ``bench/gpu.json`` and ``bench/gpu_train.json`` (the
figures block of ``docs/gpu.md``), ``bench/splat_real_320.json`` (with ``bench/splat_real.json``, the figures
block of ``docs/splat_real.md``) and ``results/table.json`` (``make reproduce-table``: the published peers).

Hand-written pages hold their measured figures only between a pair of marker lines (:data:`PAGE_BLOCKS`); the
prose around them says how to run things and what the figures mean, without repeating them.

δ1 is shown in percent everywhere; each JSON says in its ``protocol`` whether it stores a fraction (Eigen)
or percent (DFV), and :func:`delta1_percent` converts once.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIGURES = ("<!-- figures:begin (python -m docs.make_results) -->", "<!-- figures:end -->")
TABLE = (
    "<!-- results-table:begin (python -m docs.make_results; edit the bench JSONs, not this) -->",
    "<!-- results-table:end -->",
)
REAL_SECTION = "Real photographs (DFD-indoor, real f/2.8 lens blur)"
#: figures of the README's top block, first one first; a missing file is left out
README_FIGURES = (
    ("docs/real_photos.png", "Depth from one real defocused photograph (DFD-indoor, f/2.8)"),
    ("docs/prediction.png", "Depth from one defocused image: input, SDNet's depth z0, DepthNet, ground truth"),
)
#: label prefixes of bench/real.json rows left to docs/results.md (ablations), out of the README's table
README_SKIPS_REAL = ("ablation", "same model, without", "same recipe, training seed")
SOURCES = {
    "real": "bench/real.json",
    "train": "bench/train.json",
    "quick": "bench/quick.json",
    "quick_real": "bench/quick_real.json",
    "quick_tier": "bench/quick_tier.json",
    "long": "bench/train_long.json",
    "splat": "bench/splat.json",
    "splat_real": "bench/splat_real.json",
    "confidence": "bench/confidence.json",
    "texture": "bench/texture_error.json",
    "oracle": "bench/single_image_oracle.json",
    "single_real": "bench/single_image_real.json",
    "data": "bench/data.json",
    "render": "bench/render.json",
    "predict_stack": "bench/predict_stack.json",
    "gpu": "bench/gpu.json",
    "gpu_train": "bench/gpu_train.json",
    "splat_real_320": "bench/splat_real_320.json",
    "table": "results/table.json",
}
NETWORK_ROWS = ("self-supervised", "supervised")
STACK_ROWS = ("splatting stage", "depth from focus", "constant")
PROCEDURAL_LABELS = {
    "self-supervised": ("**sdgs**, self-supervised", "one image"),
    "supervised": ("sdgs, supervised (upper bound)", "one image"),
    "splatting stage": ("sdgs splatting stage", "focal stack"),
    "depth from focus": ("depth from focus (Laplacian)", "focal stack"),
    "constant": ("constant (median training depth)", "none"),
}


def load_sources(repo: Path) -> dict[str, dict]:
    """The JSONs of :data:`SOURCES` that exist under ``repo``, by key."""
    return {k: json.loads((repo / p).read_text()) for k, p in SOURCES.items() if (repo / p).is_file()}


def delta1_percent(value: float | None, protocol: str) -> float | None:
    """δ1 in percent from a JSON whose ``protocol`` text says its unit (fractions unless it says DFV/percent)."""
    if value is None:
        return None
    in_percent = protocol.lstrip().upper().startswith("DFV") or "in %" in protocol or "percent" in protocol
    return value if in_percent else 100.0 * value


def fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


@dataclass
class Row:
    """One line of a results table: depth metrics (m; δ1 in percent)."""

    label: str
    input: str
    abs_rel: float | None
    rmse: float | None
    delta1: float | None
    note: str = ""

    def cells(self) -> list[str]:
        return [self.label, self.input, fmt(self.abs_rel), fmt(self.rmse), fmt(self.delta1, 1)]


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


# ----------------------------------------------------------------------------------------------- row sources
def _carried_note(row: dict) -> str:
    """`` (measured DATE; not re-run…)`` for a row carried from an earlier run, else ``""``; rows measured before
    the output smoothing existed (no ``smooth_px``) say they had none."""
    if "carried" not in row:
        return ""
    unsmoothed = "; without the output smoothing" if "smooth_px" not in row else ""
    return f" (measured {row['carried'][:10]}; not re-run{unsmoothed})"


def real_rows(src: dict, readme: bool = False) -> list[Row]:
    """``bench/real.json``: ``{"data", "protocol", "rows": {label: {abs_rel, rmse, delta1 (fraction), input?,
    note?, carried?}}}``. ``readme``: without the ablation rows (:data:`README_SKIPS_REAL`)."""
    if "real" not in src:
        return []
    real = src["real"]
    return [
        Row(
            label,
            m.get("input", "one image"),
            m.get("abs_rel"),
            m.get("rmse"),
            delta1_percent(m.get("delta1"), real["protocol"]),
            m.get("note", "") + _carried_note(m),
        )
        for label, m in real["rows"].items()
        if not (readme and label.startswith(README_SKIPS_REAL))
    ]


def procedural_rows(src: dict, experiment: str = "procedural", key: str = "train") -> list[Row]:
    """The five rows of one experiment of ``bench/train.json`` (or ``train_long.json``)."""
    if key not in src or experiment not in src[key]["rows"]:
        return []
    rows, protocol = src[key]["rows"][experiment], src[key]["protocol"]
    return [
        Row(*PROCEDURAL_LABELS[name], m["abs_rel"], m["rmse"], delta1_percent(m["delta1"], protocol))
        for name, m in rows.items()
        if name in PROCEDURAL_LABELS
    ]


def peer_rows(src: dict, only_self_supervised: bool = False) -> dict[str, list[Row]]:
    """Published peers beside each experiment of ``results/table.json`` (copied, not re-run), by experiment."""
    out: dict[str, list[Row]] = {}
    for name, exp in src.get("table", {}).items():
        peers = [p for p in exp.get("peers", []) if not only_self_supervised or "self-sup" in p["method"]]
        if peers:
            out[name] = [
                Row(
                    p["method"],
                    "published",
                    p.get("abs_rel"),
                    p.get("rmse"),
                    delta1_percent(p.get("delta1"), ""),
                    p.get("protocol", ""),
                )
                for p in peers
            ]
    return out


# ------------------------------------------------------------------------------------------------ README
def readme_table(src: dict) -> list[str]:
    """The README's one results table: real photographs, the procedural rows, the published self-supervised
    peers (with our row's status), and a caption with the protocols."""
    groups: list[tuple[str, list[Row]]] = []
    if rows := real_rows(src, readme=True):
        groups.append((f"real photos ({src['real']['data']})", rows))
    if rows := procedural_rows(src):
        groups.append(("procedural scenes (FoD500 optics), held out", rows))
    for name, rows in peer_rows(src, only_self_supervised=True).items():
        needs = src["table"][name].get("needs")
        ours = Row("**sdgs**", "one image", None, None, None)
        if needs:
            ours.label += " (not run: needs the data)"
        groups.append((f"{name} (published, their protocol)", [ours, *rows]))
    lines = table(
        ["data", "method", "input", "AbsRel ↓", "RMSE (m) ↓", "δ1 (%) ↑"],
        [[data if i == 0 else "", *row.cells()] for data, rows in groups for i, row in enumerate(rows)],
    )
    notes = []
    if "real" in src:
        notes.append(f"Real photos: {src['real']['protocol']} (`bench/real.json`).")
    if "train" in src:
        notes.append(f"Procedural: {src['train']['protocol'].split('; near')[0]} (`bench/train.json`).")
    if notes:
        lines += [
            "",
            " ".join(notes) + " All numbers, the other test sets and the ablations: "
            "[docs/results.md](docs/results.md).",
        ]
    return lines


def readme_figures(repo: Path) -> list[str]:
    return [f"![{alt}]({path})" for path, alt in README_FIGURES if (repo / path).is_file()]


def replace_block(text: str, markers: tuple[str, str], body: list[str], name: str = "README.md") -> str:
    """``text`` with the lines between the two marker lines replaced by ``body`` (both markers must exist)."""
    begin, end = markers
    if begin not in text or end not in text:
        raise ValueError(f"{name} lacks the generated block markers {begin!r} ... {end!r}")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return head + begin + "\n" + "\n".join(body) + "\n" + end + tail


# ---------------------------------------------------------------------------------------------- results.md
def section_real(src: dict) -> list[str]:
    if "real" not in src:
        return []
    real = src["real"]
    lines = [
        f"## {REAL_SECTION}",
        "",
        f"Data: {real['data']}. Protocol: {real['protocol']}. Source: `bench/real.json`.",
        "",
    ]
    ratios = real.get("ratios_to_constant", {})
    ratio = lambda label: (  # noqa: E731
        f"{ratios[label]['abs_rel']:.2f} / {ratios[label]['rmse']:.2f}" if label in ratios else ""
    )
    lines += table(
        ["method", "AbsRel ↓", "RMSE (m) ↓", "δ1 (%) ↑", "AbsRel / RMSE vs constant", "note"],
        [[r.label, fmt(r.abs_rel), fmt(r.rmse), fmt(r.delta1, 1), ratio(r.label), r.note] for r in real_rows(src)],
    )
    if missing := real.get("missing"):
        lines += ["", "Not measured (no checkpoint yet; the command trains it): " + "; ".join(
            f"{label}: `{why.split(': ', 1)[-1]}`" for label, why in missing.items()
        ) + "."]  # fmt: skip
    diagnosed = {label: m["diagnosis"] for label, m in real["rows"].items() if "diagnosis" in m}
    if diagnosed:
        lines += [
            "",
            "**Where the error lies**: each network's AbsRel once every prediction is rescaled by its scene's "
            "median GT / median prediction (what is left is the error of the depth map's shape), and those "
            "per-scene scales (> 1: the prediction is too near); across the scenes, their geometric mean (the "
            "model's bias) and the slope of log median prediction on log median GT (1: the model reads each "
            "room's own scale; 0: it gives every room one depth). *Flattened*: the AbsRel of each prediction replaced "
            "by one depth, its own median (no ground truth read); below the prediction's AbsRel, the shape the "
            "network draws inside a room costs more than it gains.",
            "",
            *table(
                ["method", "AbsRel", "flattened", "AbsRel after per-scene scale", "per-scene scale GT / prediction",
                 "bias", "slope"],
                [
                    [label, fmt(real["rows"][label]["abs_rel"]), fmt(d.get("abs_rel_flat_at_own_median")),
                     fmt(d["abs_rel_after_per_scene_scale"]),
                     " ".join(f"{r:.2f}" for r in d["scale_gt_over_pred"]), fmt(d.get("scale_bias"), 2),
                     fmt(d.get("scale_slope"), 2)]
                    for label, d in diagnosed.items()
                ],
            ),
        ]  # fmt: skip
    if medians := real.get("scene_median_depth_m"):
        train = medians["train"]
        quartiles = [train[round(q * (len(train) - 1))] for q in (0, 0.25, 0.5, 0.75, 1)]
        lines += [
            "",
            "Median depth per scene (m): validation "
            + ", ".join(f"{m:.2f}" for m in medians["validation"])
            + f"; the {len(train)} training scenes' min / quartiles / max "
            + " / ".join(f"{m:.2f}" for m in quartiles)
            + ".",
        ]
    responses = {label: m["scale_response"] for label, m in real["rows"].items() if "scale_response" in m}
    if responses:
        ks = next(iter(responses.values()))["k"]
        lines += [
            "",
            "**Does depth follow the blur?** The validation rooms moved `k` times farther, their f/2.8 photo "
            "synthesised at 1.7 m from the f/8 photo and the scaled depth: each network's median prediction over "
            "the room as captured (geometric mean over rooms; a network that reads the blur gives `k`), its AbsRel "
            "at each `k`, and the slope of log prediction on log `k` (1: depth follows the blur; 0: the room's "
            "look alone sets it).",
            "",
            *table(
                ["method", *(f"k = {k:g}" for k in ks), "slope", "AbsRel per k"],
                [
                    [label, *(f"{v:.2f}" for v in r["prediction_over_captured"]), fmt(r["slope"], 2),
                     " / ".join(fmt(a) for a in r["abs_rel"])]
                    for label, r in responses.items()
                ],
            ),
        ]  # fmt: skip
    if dev := real.get("dev_fold"):
        const = dev["constant"]
        lines += [
            "",
            f"**The output smoothing, chosen on a dev fold** (`{dev['run']}`: the headline recipe trained on the "
            f"first {dev['training_scenes']} training scenes, scored on the next {len(dev['scenes'])}, which it "
            "never saw; the validation scenes play no part). Gaussian σ (px at 645 px width) applied to the "
            "predicted log depth; the constant of the fold's training scenes on those scenes: AbsRel "
            f"{fmt(const['abs_rel'])}, RMSE {fmt(const['rmse'])} m, δ1 "
            f"{fmt(delta1_percent(const['delta1'], real['protocol']), 1)} %. Chosen: σ = {dev['chosen_px']:g} px "
            f"(lowest AbsRel); the training configuration's `model.predict_smooth_px`: {dev.get('config_px', 0):g} px"
            + (f" (measured {dev['carried'][:10]}; not re-run)" if "carried" in dev else "")
            + ".",
            "",
            *table(
                ["σ (px)", "AbsRel ↓", "RMSE (m) ↓", "δ1 (%) ↑"],
                [
                    [sigma, fmt(m["abs_rel"]), fmt(m["rmse"]), fmt(delta1_percent(m["delta1"], real["protocol"]), 1)]
                    for sigma, m in dev["smooth_px"].items()
                ],
            ),
        ]  # fmt: skip
    if tuning := real.get("teacher_tuning"):
        lines += [
            "",
            f"**The teacher's sweep settings**, tuned on {tuning['scenes']} (their ground truth tunes this "
            "no-learning stage; the validation scenes play no part). The training configuration's teacher: "
            + ", ".join(f"`{k}={v}`" for k, v in real.get("teacher_settings", {}).items())
            + ".",
            "",
            *table(
                ["teacher variant", "AbsRel ↓", "RMSE (m) ↓", "δ1 (%) ↑", "s / scene"],
                [
                    [label, fmt(m["abs_rel"]), fmt(m["rmse"]), fmt(delta1_percent(m["delta1"], real["protocol"]), 1),
                     f"{m['seconds_per_scene']:.2f}"]
                    for label, m in tuning["rows"].items()
                ],
            ),
        ]  # fmt: skip
    if blur := real.get("real_blur"):
        shift = blur["shift_px"]
        lines += [
            "",
            f"**The real lens against the thin lens**, on {blur['scenes']}: per depth bin, the Gaussian σ that best "
            "turns the f/8 photo into the f/2.8 photo, as captured and after registering the pair (one global "
            "sub-pixel shift), beside the thin lens's σ (`SIGMA_PER_COC` × the f/2.8 CoC less the f/8 photo's). "
            f"The two photos of a scene are shifted by {shift['median_abs_dx']:.1f} px horizontally in the median "
            f"(up to {shift['max_abs_dx']:.1f} px; vertically {shift['median_abs_dy']:.1f}, up to "
            f"{shift['max_abs_dy']:.1f} px): as captured, the shift reads as blur everywhere, in focus too.",
            "",
            *table(
                ["depth (m)", "pixels", "CoC (px)", "thin lens σ (px)", "measured σ, as captured",
                 "measured σ, registered"],
                [
                    [f"{r['depth_m']:.2f}", f"{r['pixels']:,}", f"{r['coc_px']:.2f}", f"{r['lens_sigma_px']:.2f}",
                     f"{r['sigma_as_captured_px']:.2f}", f"{r['sigma_registered_px']:.2f}"]
                    for r in blur["bins"]
                ],
            ),
        ]  # fmt: skip
    return lines + [""]


def _metrics_cells(m: dict | None, protocol: str) -> list[str]:
    if m is None:
        return ["–"] * 4
    return [
        fmt(m["abs_rel"]),
        fmt(m.get("near/abs_rel")),
        fmt(delta1_percent(m["delta1"], protocol), 1),
        fmt(m["rmse"]),
    ]


def section_procedural(src: dict) -> list[str]:
    if "train" not in src:
        return []
    q = src["train"]
    lines = [
        "## Procedural scenes: one defocused image",
        "",
        f"Config: {q['config']}. Protocol: {q['protocol']}. Source: `bench/train.json` (`make bench-train`).",
        "",
    ]
    for exp, family in (("procedural", "pink (training family)"), ("procedural-geometric", "geometric (never seen)")):
        if exp in q["rows"]:
            lines += [f"**Held-out scenes, {family}** (`{exp}`):", ""]
            lines += table(
                ["method", "input", "AbsRel ↓", "near AbsRel ↓", "δ1 (%) ↑", "RMSE (m) ↓"],
                [[*PROCEDURAL_LABELS[r], *_metrics_cells(m, q["protocol"])] for r, m in q["rows"][exp].items()],
            )
            lines.append("")
    lines += ["### Quality bar per test set", ""]
    bar_rows = []
    for exp, bar in q.get("bar", {}).items():
        if "abs_rel_over_constant" not in bar:
            continue
        met = sum(bool(v) for v in bar["targets"].values())
        fit = q.get("fit_seconds", {}).get(exp, {}).get("self-supervised")
        bar_rows.append(
            [
                f"`{exp}`",
                f"{bar['abs_rel_over_constant']:.3f}",
                f"{bar['near_abs_rel_over_constant']:.3f}",
                f"{bar['delta1_minus_constant']:+.1f}",
                fmt(fit, 0),
                f"{met} of {len(bar['targets'])}",
            ]
        )
    lines += [
        "Self-supervised against the constant (AbsRel ≤ 0.75 ×, near AbsRel ≤ 0.5 ×, δ1 ≥ constant − 5 points), "
        "supervised ≤ self-supervised, whole pipeline within its budget.",
        "",
    ]
    lines += table(
        ["experiment", "AbsRel / constant", "near AbsRel / constant", "δ1 − constant", "fit (s)", "targets met"],
        bar_rows,
    )
    lines += [
        "",
        "### Every experiment",
        "",
        "Self-supervised and supervised rows (AbsRel / near AbsRel / δ1 % / RMSE m).",
    ]
    lines += [""] + table(
        ["experiment", "test set", "self-supervised", "supervised"],
        [
            [
                f"`{exp}`",
                q["test_sets"].get(exp, ""),
                *(" / ".join(_metrics_cells(rows.get(r), q["protocol"])) if r in rows else "–" for r in NETWORK_ROWS),
            ]
            for exp, rows in q["rows"].items()
        ],
    )
    if summary := q.get("seed_summary"):
        lines += [
            "",
            "### Training seeds",
            "",
            "Mean over seeds, and on how many seeds supervised is at least as good as self-supervised.",
        ]
        rows = []
        for comparison, metrics in summary.items():
            for key, v in metrics.items():
                won = v["supervised_at_least_as_good"]
                rows.append(
                    [
                        comparison,
                        key,
                        fmt(v["self-supervised"]["mean"], 4),
                        fmt(v["supervised"]["mean"], 4),
                        f"{won['seeds']} of {won['of']}",
                    ]
                )
        lines += [""] + table(["comparison", "metric", "self-supervised", "supervised", "supervised ≥"], rows)
    return lines + [""]


def section_long(src: dict) -> list[str]:
    if "long" not in src:
        return []
    long = src["long"]
    lines = [
        "## Long budget",
        "",
        f"Config: {long['config']}. Source: `bench/train_long.json` "
        "(`make bench-train-long`); curves: [train_long.png](train_long.png).",
        "",
    ]
    lines += table(
        ["experiment", "method", "AbsRel ↓", "near AbsRel ↓", "δ1 (%) ↑", "RMSE (m) ↓", "fit (s)"],
        [
            [
                f"`{exp}`",
                PROCEDURAL_LABELS[r][0],
                *_metrics_cells(m, long["protocol"]),
                fmt(long.get("fit_seconds", {}).get(exp, {}).get(r), 0),
            ]
            for exp, rows in long["rows"].items()
            for r, m in rows.items()
        ],
    )
    if aim := long.get("aim"):
        met = "met" if aim["near abs_rel <= 1.5 x splatting stage"] else "not met"
        lines += [
            "",
            f"Aim near AbsRel ≤ 1.5 × the splatting stage's: {aim['near_abs_rel_over_splatting_stage']:.2f} × ({met}).",
        ]
    return lines + [""]


def section_texture(src: dict) -> list[str]:
    if "texture" not in src:
        return []
    t = src["texture"]
    lines = [
        "## Where single-image depth errs: texture contrast",
        "",
        f"{t['data']}. Contrast: {t['strength']}. Source: `bench/texture_error.json` (`make bench-texture-error`); "
        "figure: [texture_error.png](texture_error.png). Near AbsRel (GT < 1.5 m) per contrast bin, means over "
        "training seeds; in brackets the mean log ratio ln(pred / GT) (< 0: too near).",
        "",
    ]
    for family, groups in t.get("seed_means", {}).items():
        bins = list(next(iter(groups.values())))
        lines += [f"**{family}**", ""]
        lines += table(
            ["model", *bins],
            [
                [g, *(f"{fmt(c['near_abs_rel'])} ({fmt(c['near_log_ratio'], 2)})" for c in cells.values())]
                for g, cells in groups.items()
            ],
        )
        lines.append("")
    return lines


def section_stack(src: dict) -> list[str]:
    lines = []
    if "splat" in src:
        s = src["splat"]
        lines += [
            "## The splatting stage (focal stacks)",
            "",
            f"**Procedural**: {s['dataset']}; {s['protocol']}. Source: `bench/splat.json` (`make bench-splat`).",
            "",
        ]
        lines += table(
            ["method", "AbsRel ↓", "RMSE (m) ↓", "δ1 (%) ↑", "near AbsRel ↓"],
            [
                [
                    name,
                    fmt(q["all"]["abs_rel"]),
                    fmt(q["all"]["rmse"]),
                    fmt(delta1_percent(q["all"]["delta1"], s["protocol"]), 1),
                    fmt(q["near"]["abs_rel"]),
                ]
                for name, q in s["quality"].items()
            ],
        )
        lines.append("")
    if "splat_real" in src:
        r = src["splat_real"]
        lines += [
            f"**DFD-indoor, real textures, synthesised stacks**: {r['dataset']}; {r['protocol']}. "
            "Source: `bench/splat_real.json` (`make bench-splat-real`); details: [splat_real.md](splat_real.md).",
            "",
        ]
        lines += table(
            ["method", "AbsRel ↓", "RMSE (m) ↓", "δ1 (%) ↑"],
            [
                [name, fmt(q["abs_rel"]), fmt(q["rmse"]), fmt(delta1_percent(q["delta1"], r["protocol"]), 1)]
                for name, q in r["quality"].items()
            ],
        )
        lines.append("")
    if "confidence" in src:
        c = src["confidence"]
        lines += [
            "**Calibration of the splatting confidence** (`bench/confidence.json`, `make bench-confidence`): "
            f"{c['data']}. A confidence of 0.5 is meant as a relative depth error of {c['confidence_rel_error']}; "
            f"{100 * c['all_pixels']['confident_share']:.1f} % of pixels reach it, with mean relative error "
            f"{fmt(c['all_pixels']['mean_rel_error_confident'])} there ({fmt(c['all_pixels']['mean_rel_error'])} on "
            f"all pixels); {c['all_pixels']['scenes_without_confident_pixels']} scenes have none.",
            "",
        ]
        lines += table(
            ["confidence", "pixel share", "mean relative error"],
            [
                [f"{lo:.1f}–{hi:.1f}", f"{row['pixel_share']:.4f}", fmt(row["mean_rel_error"])]
                for row in c["calibration"]
                for lo, hi in [row["confidence"]]
            ],
        )
        lines.append("")
    return lines


def section_single_real(src: dict) -> list[str]:
    if "single_real" not in src:
        return []
    s = src["single_real"]
    lines = [
        "## Procedural-trained single-image models on real photos",
        "",
        f"{s['data']}; camera {s['camera']}; {s['protocol']}. Source: `bench/single_image_real.json` "
        "(`python -m bench.single_image_real`).",
        "",
    ]
    lines += table(
        ["model", "AbsRel ↓", "RMSE (m) ↓", "δ1 (%) ↑"],
        [
            [name, fmt(m["abs_rel"]), fmt(m["rmse"]), fmt(delta1_percent(m["delta1"], s["protocol"]), 1)]
            for name, m in s["rows"].items()
        ],
    )
    return lines + [""]


def section_peers(src: dict) -> list[str]:
    groups = peer_rows(src)
    if not groups:
        return []
    lines = [
        "## Published peers",
        "",
        "Copied from the peers' tables as published (`lightning_configs/table.yaml`, "
        "sources in [protocols.md](protocols.md)); not re-run. Our rows need the data (`make reproduce-table`).",
        "",
    ]
    lines += table(
        ["data", "method", "AbsRel ↓", "RMSE (m) ↓", "δ1 (%) ↑", "protocol"],
        [
            [name if i == 0 else "", r.label, fmt(r.abs_rel), fmt(r.rmse), fmt(r.delta1, 1), r.note]
            for name, rows in groups.items()
            for i, r in enumerate(rows)
        ],
    )
    return lines + [""]


def results_page(src: dict) -> str:
    lines = [
        "# Results",
        "",
        "<!-- generated by `python -m docs.make_results` from the bench JSONs: edit those, "
        "then rerun (`make docs`) -->",
        "",
    ]
    for section in (
        section_real,
        section_procedural,
        section_long,
        section_texture,
        section_stack,
        section_single_real,
        section_peers,
    ):
        lines += section(src)
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------------------------------- benchmarks.md
#: (what, command, source key, figures from the JSON)
BENCHMARKS: list[tuple[str, str, str, Callable[[dict], str]]] = [
    (
        "FoD500-format loading, 256², batch 4",
        "make bench-data",
        "data",
        lambda d: (
            f"{d['fod500_format_256px_samples_per_s']['workers_0']} samples/s (0 workers), "
            f"{d['fod500_format_256px_samples_per_s']['workers_2']} (2 workers); NYUv2 on-the-fly synthesis "
            f"{d['nyuv2_on_the_fly_synthesis_320x240_samples_per_s']} samples/s"
        ),
    ),
    (
        "renderer, torch backend vs the naive pair-list splatter, 256², forward + backward",
        "make bench-render",
        "render",
        lambda d: f"time ratio {d['summary']['torch_vs_naive_forward_backward_ratio_256px_b1_sigma_0.5_4']}",
    ),
    (
        "splatting stage, procedural 128² scenes",
        "make bench-splat",
        "splat",
        lambda d: (
            f"AbsRel {d['quality']['z_gs']['all']['abs_rel']:.3f} (constant "
            f"{d['quality']['constant_train_median']['all']['abs_rel']:.3f}); s/scene "
            + ", ".join(f"{k} px: {v}" for k, v in d["seconds_per_scene_cpu"].items())
        ),
    ),
    (
        "single-image depth on real f/2.8 photos (DFD-indoor held-out scenes), every row and baseline",
        "make bench-real",
        "real",
        lambda d: "; ".join(
            f"{label}: AbsRel {r['abs_rel']:.3f}"
            for label, r in d["rows"].items()
            if label.startswith(("sdgs", "constant"))
        ),
    ),
    (
        "splatting stage, DFD-indoor synthesised stacks",
        "make bench-splat-real",
        "splat_real",
        lambda d: (
            f"AbsRel {d['quality']['splatting stage']['abs_rel']:.3f}, ratio to the constant "
            f"{d['ratios_to_constant']['abs_rel']}"
        ),
    ),
    (
        "`sdgs predict --stack`, 640×480 and 12 MP",
        "make bench-predict-stack",
        "predict_stack",
        lambda d: "; ".join(
            f"{k}: {v['seconds_per_scene']} s/scene, {v['peak_rss_gb']} GB peak" for k, v in d["results"].items()
        ),
    ),
    (
        "calibration of the splatting confidence",
        "make bench-confidence",
        "confidence",
        lambda d: (
            f"{100 * d['all_pixels']['confident_share']:.1f} % of pixels at confidence ≥ 0.5, "
            f"mean relative error {d['all_pixels']['mean_rel_error_confident']} there"
        ),
    ),
    (
        "every headline procedural row at a quarter of the quickstart's budget",
        "make bench-quick",
        "quick",
        lambda d: (
            f"self-supervised AbsRel {d['rows']['quick-procedural']['self-supervised']['abs_rel']:.3f} vs "
            f"constant {d['rows']['quick-procedural']['constant']['abs_rel']:.3f}"
        ),
    ),
    (
        "the real-photo model, its supervised bound and the no-defocus control at a quarter of their steps, "
        "beside the real baselines",
        "make bench-quick",
        "quick_real",
        lambda d: "; ".join(
            f"{label}: AbsRel {r['abs_rel']:.3f}"
            for label, r in d["rows"].items()
            if label.startswith(("sdgs", "constant", "no-defocus", "same model"))
        ),
    ),
    (
        "the quick tier's wall time, stage by stage",
        "make bench-quick",
        "quick_tier",
        lambda d: (
            f"{d['total_seconds'] / 60:.1f} min in all (budget {d['budget_seconds'] / 60:.0f} min): "
            + "; ".join(f"{name} {v['seconds'] / 60:.1f} min" for name, v in d["stages"].items())
        ),
    ),
    (
        "single-image bar, ablations, seeds, variants (about 2.5 h)",
        "make bench-train",
        "train",
        lambda d: (
            f"{len(d['rows'])} experiments; self-supervised AbsRel "
            f"{d['rows']['procedural']['self-supervised']['abs_rel']:.3f} vs constant "
            f"{d['rows']['procedural']['constant']['abs_rel']:.3f}"
        ),
    ),
    (
        "long budget, learning curves (about 60 min)",
        "make bench-train-long",
        "long",
        lambda d: f"self-supervised AbsRel {d['rows']['procedural-long']['self-supervised']['abs_rel']:.3f}",
    ),
    (
        "single-image error per texture-contrast bin",
        "make bench-texture-error",
        "texture",
        lambda d: f"{d['seconds']} s; families " + ", ".join(d["families"]),
    ),
]


def benchmarks_page(src: dict) -> str:
    rows = [
        [what, f"`{cmd}`", f"`{SOURCES[key]}`", figures(src[key]), src[key].get("date", "–")]
        for what, cmd, key, figures in BENCHMARKS
        if key in src
    ]
    lines = [
        "# Benchmarks",
        "",
        "<!-- generated by `python -m docs.make_results` from the bench JSONs -->",
        "",
        "On 2 CPU cores unless a JSON's `machine` says otherwise. `make bench` runs data, renderer and "
        "splatting; each other target writes the JSON named here. GPU figures: [gpu.md](gpu.md); results: "
        "[results.md](results.md).",
        "",
        *table(["benchmark", "command", "writes", "figures (from the JSON)", "run"], rows),
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------- docs/gpu.md
GPU_BLOCK = (
    "<!-- gpu-figures:begin (python -m docs.make_results; edit bench/gpu.json and bench/gpu_train.json, not this) -->",
    "<!-- gpu-figures:end -->",
)
#: every renderer backend ``bench.gpu_check`` can time; the block names those its JSON holds no figures for
GPU_BACKENDS = ("torch", "gsplat", "triton")
#: the sections of ``bench/gpu.json`` (``bench.gpu_check``), in the order the block reports them
GPU_SECTIONS = ("parity", "parity_seeds", "parity_triton", "render_speed", "fit", "train", "train_gpu", "ddp")
GPU_TRAIN_LABELS = {
    "train": "training, `fod500.yaml` (fp32, torch renderer), `bench/gpu.json`",
    "train_gpu": "training, `fod500.yaml` + `fod500_gpu.yaml`, `bench/gpu.json`",
    "ddp": "training, DDP on 2 GPUs, `bench/gpu.json`",
}


def _records(section: object, key: str) -> dict[str, dict]:
    """The per-backend records of a ``bench/gpu.json`` section that hold ``key``: ``{backend: record}``. A
    section that is one record (it names its ``backend``) counts as that backend's."""
    if not isinstance(section, dict):
        return {}
    if key in section:
        return {section.get("backend", "?"): section}
    return {b: r for b, r in section.items() if isinstance(r, dict) and key in r}


def _not_measured(section: object) -> str | None:
    """Why a section (or a backend's record) holds no figures: its ``skipped`` or ``error`` text, else None."""
    if not isinstance(section, dict):
        return "not run"
    if "skipped" in section:
        return str(section["skipped"])
    if "error" in section:
        return f"failed: {section['error']}"
    return None


def _parity_cell(p: dict) -> str:
    """Pass or fail and the worst forward (absolute) and gradient (relative to scale) error of a parity record
    (one seed) or of a parity sweep (``worst`` over its seeds)."""
    if "worst" in p:
        cases, verdict = p["worst"], f"{sum(p['passed'])} of {len(p['passed'])} seeds pass"
    else:
        cases = {k: v for k, v in p.items() if isinstance(v, dict) and "forward" in v}
        verdict = "pass" if p.get("pass") else "**fail**"
    fwd = max(e["max_abs"] for c in cases.values() for e in c["forward"].values())
    grad = max(e["max_rel_to_scale"] for c in cases.values() for e in c["gradient"].values())
    cell = f"{verdict}; forward ≤ {fwd:.1e} absolute, gradients ≤ {grad:.1e} of their scale"
    if "forward_tol_abs" in p:
        cell += f" (tolerances {p['forward_tol_abs']:g} and {p['gradient_tol_rel_to_scale']:g})"
    return cell


def _utilisation(record: dict) -> str:
    util = record.get("gpu_utilisation", {})
    return f", GPU busy {util['sm_util_mean_pct']} %" if "sm_util_mean_pct" in util else ""


def _train_cell(t: dict) -> str:
    """Training throughput of a ``TrainThroughput`` record: in the timed steps and over the wall time."""
    batch, crop = t["batch_shape_per_process"][0], t["batch_shape_per_process"][-1]
    wall = t["steps_timed"] * batch * t.get("world_size", 1) / t["wall_s"]
    extra = [f"renderer {t['renderer_backend']}"] if t.get("renderer_backend") else []
    if t.get("precision"):
        extra.append(f"precision {t['precision']}")
    if t.get("peak_memory_mb"):
        extra.append(f"peak memory {t['peak_memory_mb']:.0f} MB")
    return (
        f"{t['samples_per_s']} focal stacks/s in the training steps ({t['seconds_per_step']} s/step, batch "
        f"{batch} of {crop}² crops{', ' if extra else ''}{', '.join(extra)}{_utilisation(t)}); {wall:.1f} "
        f"stacks/s over the wall time of the {t['steps_timed']} timed steps, with data loading and validation"
    )


def gpu_block(src: dict) -> list[str]:
    """The figures of ``docs/gpu.md``: ``bench/gpu.json`` (``make gpu-check``), ``bench/gpu_train.json``
    (``make bench-gpu-train``) and, for comparison, ``bench/splat.json``'s CPU fit time."""
    gpu, gpu_train = src.get("gpu", {}), src.get("gpu_train", {})
    if not gpu and not gpu_train:
        return ["No GPU figures yet: `make gpu-check` writes `bench/gpu.json`, `make bench-gpu-train` "
                "`bench/gpu_train.json`."]  # fmt: skip
    machine = gpu.get("machine") or gpu_train.get("machine", {})
    dated = [f"`{SOURCES[k]}` ({src[k]['date']})" for k in ("gpu", "gpu_train") if k in src and "date" in src[k]]
    lines = [
        f"Measured on {machine.get('cuda') or machine.get('gpu', 'a GPU')} (torch {machine.get('torch', '?')}"
        + (f", gsplat {machine['gsplat']}" if "gsplat" in machine else "")
        + (f", {machine['cpu_count']} CPU cores" if "cpu_count" in machine else "")
        + f"): {' and '.join(dated)}.",
        "",
    ]
    rows: list[list[str]] = []
    if kernels := gpu.get("gsplat_kernels"):
        state = "available" if kernels.get("available") else "**not available**"
        rows.append(
            [
                "gsplat's CUDA kernels",
                f"{state}, loaded in {kernels['load_s']} s (the first use on a machine includes their JIT build)",
            ]
        )
    measured: set[str] = set()
    for name in ("parity", "parity_seeds", "parity_triton"):
        if name not in gpu or _not_measured(gpu[name]):
            continue
        p = gpu[name]
        backend = p.get("backend") or ("triton" if name == "parity_triton" else "gsplat")
        what = f"parity, {backend} vs torch backend (random inputs, `rasterize_gaussians` and `render_defocus`)"
        if name == "parity_seeds":
            what = f"parity, {backend} vs torch backend, {len(p['seeds'])} more random inputs"
        rows.append([what, _parity_cell(p)])
    speed = _records(gpu.get("render_speed"), "forward_backward_s")
    if speed:
        first = next(iter(speed.values()))
        lo, hi = first["sigma_px_range"]
        rows.append(
            [
                f"renderer, {first['batch']} × {first['size']}², σ {lo:g}–{hi:g} px, forward + backward",
                ", ".join(f"{b} {r['forward_backward_s']:.3f} s{_utilisation(r)}" for b, r in speed.items()),
            ]
        )
        measured |= set(speed)
    fits = {b: (r, "") for b, r in _records(gpu.get("fit"), "seconds_per_scene").items()}
    probe = gpu_train.get("splat_fit_probe")
    if probe and probe.get("backend") not in fits:
        fits[probe["backend"]] = (probe, " (`bench/gpu_train.json`'s probe)")
    if fits:
        first = next(iter(fits.values()))[0]
        setting = lambda r: (r["iters"], r["num_layers"], r["size"], r["batch"])  # noqa: E731
        for b, (r, note) in fits.items():
            if setting(r) != setting(first):
                fits[b] = (
                    r,
                    f"{note} ({r['iters']} iterations, {r['num_layers']} layers, {r['size']}², batch {r['batch']})",
                )
        cpu = src.get("splat", {})
        cpu_s = cpu.get("seconds_per_scene_cpu", {}).get(str(first["size"]))
        rows.append(
            [
                f"splatting fit, {first['iters']} iterations, {first['num_layers']} layers, {first['size']}² scene, "
                f"batch {first['batch']}",
                ", ".join(f"{b} {r['seconds_per_scene']:.2f} s{note}" for b, (r, note) in fits.items())
                + " per scene"
                + (
                    f"; {cpu['machine']['cpu_count']} CPU cores, `bench/splat.json` ({cpu['settings']['iters']} "
                    f"iterations, {cpu['settings']['num_layers']} layers): {cpu_s} s"
                    if cpu_s is not None
                    else ""
                ),
            ]
        )
        measured |= set(fits)
    for name, label in GPU_TRAIN_LABELS.items():
        if name in gpu and "samples_per_s" in gpu[name]:
            rows.append([label, _train_cell(gpu[name])])
    if "train" in gpu_train and "samples_per_s" in gpu_train["train"]:
        rows.append(["training in `bench.gpu_train`, `bench/gpu_train.json`", _train_cell(gpu_train["train"])])
    lines += table(["what", "figure"], rows)
    missing = [f"`{name}` ({why})" for name in GPU_SECTIONS if (why := _not_measured(gpu.get(name)))]
    missing += [
        f"the {b} backend's `{name}` ({why})"
        for name in ("render_speed", "fit")
        for b, r in (gpu.get(name) or {}).items()
        if isinstance(r, dict) and (why := _not_measured(r)) and "skipped" not in gpu[name]
    ]
    if unmeasured := [b for b in GPU_BACKENDS if b not in measured]:
        missing.append(f"renderer and fit times of the {', '.join(unmeasured)} backend{'s' * (len(unmeasured) > 1)}")
    if gpu and missing:
        lines += ["", f"Not in `bench/gpu.json`: {'; '.join(missing)}."]
    if rows_by_exp := gpu_train.get("rows"):
        lines += [
            "",
            f"**`bench.gpu_train`, {gpu_train['gpu_minutes']:g} minutes of training.** Config: {gpu_train['config']}. "
            f"Protocol: {gpu_train['protocol']}.",
            "",
        ]
        lines += table(
            ["test set", "method", "AbsRel ↓", "near AbsRel ↓", "δ1 (%) ↑", "RMSE (m) ↓"],
            [
                [
                    f"`{exp}`" if i == 0 else "",
                    PROCEDURAL_LABELS.get(r, (r,))[0],
                    *_metrics_cells(m, gpu_train["protocol"]),
                ]
                for exp, rows in rows_by_exp.items()
                for i, (r, m) in enumerate(rows.items())
            ],
        )
        lines += ["", *(f"- `{exp}`: {what}" for exp, what in gpu_train.get("test_sets", {}).items())]
        lines += ["", "![Validation curve of the bench.gpu_train run](gpu_train.png)"]
    return lines


# ------------------------------------------------------------------------------------- docs/splat_real.md
SPLAT_REAL_BLOCK = (
    "<!-- splat-real-figures:begin (python -m docs.make_results; edit bench/splat_real*.json, not this) -->",
    "<!-- splat-real-figures:end -->",
)


def splat_real_block(src: dict) -> list[str]:
    """The held-out figures of ``docs/splat_real.md``, one part per width: ``bench/splat_real.json`` (``make
    bench-splat-real``) and ``bench/splat_real_320.json`` (``--width 320``)."""
    lines: list[str] = []
    for key in ("splat_real", "splat_real_320"):
        if key not in src:
            continue
        r = src[key]
        width = re.search(r"(\d+) px wide", r["dataset"])
        cfg = r["settings"]
        lines += [
            f"### Held-out scenes, {width.group(1) + ' px' if width else r['dataset']}",
            "",
            f"Source: `{SOURCES[key]}` ({r['date']}, {r['machine']['cpu_count']} CPU cores). Data: {r['dataset']}. "
            f"Fit: `iters={cfg['iters']}`, {cfg['sweep_planes']} planes spaced in {cfg['sweep_spacing']} depth, "
            f"{cfg['sweep_filter']} window {cfg['sweep_window']} px, temperature {cfg['sweep_temperature']:g}. "
            f"Constant: {r['constant_m']} m.",
            "",
        ]
        lines += table(
            ["row", "AbsRel ↓", "RMSE (m) ↓", "δ1 (%) ↑"],
            [
                [name, fmt(q["abs_rel"]), fmt(q["rmse"]), fmt(delta1_percent(q["delta1"], r["protocol"]), 1)]
                for name, q in r["quality"].items()
            ],
        )
        ratios = r["ratios_to_constant"]
        lines += [
            "",
            f"Splatting stage over the constant: AbsRel {ratios['abs_rel']} ×, RMSE {ratios['rmse']} ×. Fit time "
            f"{r['seconds_per_scene_cpu']} s per scene ({r['wall_seconds_fit']} s for {len(r['scenes'])} scenes).",
            "",
        ]
        lines += table(
            ["confidence", "pixel share", "median \\|z_gs − GT\\| / GT"],
            [
                [c["confidence"], f"{100 * c['pixel_share']:.1f} %", fmt(c["median_rel_error"])]
                for c in r["confidence_vs_relative_error"]
            ],
        )
        lines.append("")
    return lines[:-1] or ["No figures yet: `make bench-splat-real` writes `bench/splat_real.json`."]


#: hand-written pages and the generated block in each: (page, markers, body from the sources)
PAGE_BLOCKS: list[tuple[str, tuple[str, str], Callable[[dict], list[str]]]] = [
    ("docs/gpu.md", GPU_BLOCK, gpu_block),
    ("docs/splat_real.md", SPLAT_REAL_BLOCK, splat_real_block),
]


# ------------------------------------------------------------------------------------------------- driver
def render_pages(repo: Path = REPO) -> dict[Path, str]:
    """The generated files' new contents, by path: docs/results.md, docs/benchmarks.md, README.md, with its
    JSON docs/single_image.md, and each page of :data:`PAGE_BLOCKS` that exists."""
    src = load_sources(repo)
    readme = (repo / "README.md").read_text()
    readme = replace_block(readme, FIGURES, readme_figures(repo))
    readme = replace_block(readme, TABLE, readme_table(src))
    pages = {
        repo / "docs" / "results.md": results_page(src),
        repo / "docs" / "benchmarks.md": benchmarks_page(src),
        repo / "README.md": readme,
    }
    for page, markers, body in PAGE_BLOCKS:
        if (path := repo / page).is_file():
            pages[path] = replace_block(path.read_text(), markers, body(src), name=page)
    if "oracle" in src:  # the single-image diagnosis page, from its bench's JSON and the training benches'
        from bench.single_image_oracle import single_image_page

        with_bar = lambda key: src[key] if key in src and "bar" in src[key] else None  # noqa: E731
        pages[repo / "docs" / "single_image.md"] = single_image_page(
            src["oracle"], with_bar("train"), with_bar("long"), src.get("texture")
        )
    return pages


def stale(repo: Path = REPO) -> list[Path]:
    """The generated files whose committed text differs from a fresh generation."""
    return [p for p, text in render_pages(repo).items() if not p.is_file() or p.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=REPO)
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is not current")
    args = parser.parse_args(argv)
    if args.check:
        if old := stale(args.repo):
            print("not current (run python -m docs.make_results): " + ", ".join(map(str, old)), file=sys.stderr)
            return 1
        return 0
    for path, text in render_pages(args.repo).items():
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
