"""Single-image ceiling and learning curves: SDNet alone, trained on ground truth (the oracle) or on the
splatting stage's depth (self-supervised), evaluated on two texture families.

    python -m bench.single_image_oracle --steps 1200        (per run; the long curves: make bench-train-long)

Each run trains through the library's :class:`sdgs.lit.SDGSModule` under a ``lightning.Trainer`` (CPU, no
logger, no checkpoints), so it differs from ``sdgs fit`` only by its settings (:data:`RUNS`,
:func:`module_settings`): ``stage="sdnet"`` (SDNet alone, no DepthNet), the Siamese and rendered terms at
weight 0 (the network and its targets alone), ``target_space`` the depth loss, ``supervised`` the ground-truth
targets of the oracle, ``use_confidence``, ``blur_inputs``; AdamW 2e-3 with the module's cosine decay over
``--steps``. The batches come from :class:`datamodules.SyntheticDataModule`, the self-supervised runs' targets
from the :class:`sdgs.splatting.GaussianSplattingStage` callback (fits cached in ``--cache-dir``); the
augmentation is the library's (horizontal and vertical flips of the whole stack; no rot90, which the crop
record that the splatting fields are cut by cannot express). A step takes ``--batch-size`` scenes, two images of
each (the module's Siamese pair): 8 scenes, 16 images a step. The curves are :class:`CurveCallback`, which
calls :func:`evaluate` every ``--eval-every`` steps and at the last one.

Data: ``--train`` procedural scenes (pink textures, training seeds, 64 px, FoD500 optics), their splatting
fits (``iters=0``, as in the quickstart); held-out test seeds rendered with the ``pink`` family and with the
``geometric`` family (same geometry). One defocused image per sample, all five focus indices, DFV protocol;
constant = median of the training depth clipped at 1.5 m. Writes ``bench/single_image_oracle.json`` and
``docs/single_image_oracle.png`` (curves); :func:`single_image_page` lays out ``docs/single_image.md`` from the
JSON, called by the one page generator (``make docs``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import torch

from bench.common import write_json
from bench.texture_error import SEED_GROUPS
from datamodules import SyntheticDataModule
from sdgs.baselines import median_depth
from sdgs.lit import GaussianSplattingStage, SDGSModule
from sdgs.metrics import DFV_CLIP_M, error_maps, per_image_depth_errors
from sdgs.models import SDNet
from sdgs.optics import FOD500, batched_camera, coc_px

SIZE = 64
#: name -> the SDGSModule settings that make the run (the rest: :func:`module_settings`)
RUNS = {
    "oracle (ground truth)": {"supervised": True, "target_space": "log_depth"},
    "self-supervised (splatting depth)": {"use_confidence": False},
    "self-supervised, confidence-weighted": {"use_confidence": True},
    "oracle, no blur inputs": {"supervised": True, "target_space": "log_depth", "blur_inputs": False},
    "oracle, AbsRel loss": {"supervised": True, "target_space": "abs_rel"},
}
BANDS = {"near < 0.5 m": (0.0, 0.5), "mid 0.5-1.5 m": (0.5, 1.5), "far > 1.5 m": (1.5, 1e9)}
#: the splatting stage's settings (the quickstart's: the plane sweep only)
SPLAT = {"iters": 0, "fit_batch_size": 32}


def module_settings(name: str) -> dict:
    """The :class:`SDGSModule` arguments of run ``name``: SDNet 16/3 alone, its depth term only (losses clipped
    at the DFV 1.5 m), AdamW 2e-3, then the run's own settings of :data:`RUNS`."""
    return {
        "stage": "sdnet",
        "sdnet_width": 16,
        "sdnet_depth": 3,
        "blur_inputs": True,
        "lr": 2e-3,
        "weight_decay": 1e-4,
        "target_space": "log_depth",
        "loss_far_m": DFV_CLIP_M,
        "siamese_weight": 0.0,
        "blur_weight": 0.0,
        "depth_render_weight": 0.0,
        "supervised": False,
        **RUNS[name],
    }


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


def test_set(dm: SyntheticDataModule) -> tuple[torch.Tensor, torch.Tensor]:
    """The full test stacks ``(N, S, 3, H, W)`` and depths ``(N, 1, H, W)`` of ``dm``."""
    items = [dm.dataset("test").load(i) for i in range(dm.num_test)]
    return torch.stack([x["stack"] for x in items]), torch.stack([x["depth"] for x in items])


def evaluate(net: SDNet, stack: torch.Tensor, depth: torch.Tensor, camera, focus: torch.Tensor) -> dict:
    """DFV AbsRel (all, near), δ1, per focus index and per depth band of one test set."""
    net.eval()
    rows = []
    with torch.no_grad():
        for k in range(stack.shape[1]):
            z = net(stack[:, k], focus[k].expand(len(stack)), batched_camera(camera, 4, len(stack)))["depth"]
            v, _ = per_image_depth_errors(z, depth, "dfv")
            n, _ = per_image_depth_errors(z, depth, "dfv", near_max=DFV_CLIP_M)
            rel = error_maps(z, depth, "dfv")["abs_rel"]  # of depths clipped at 1.5 m, as DFV scores them
            bands = {b: float(rel[(depth >= lo) & (depth < hi)].mean()) for b, (lo, hi) in BANDS.items()}
            rows.append({"abs_rel": float(v["abs_rel"].mean()), "near_abs_rel": float(n["abs_rel"].mean()),
                         "delta1": float(v["delta1"].mean()), "bands": bands})  # fmt: skip
    net.train()
    mean = lambda key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    return {
        "abs_rel": mean("abs_rel"), "near_abs_rel": mean("near_abs_rel"), "delta1": mean("delta1"),
        "abs_rel_per_focus_index": [r["abs_rel"] for r in rows],
        "abs_rel_per_band_and_focus_index": {b: [r["bands"][b] for r in rows] for b in BANDS},
    }  # fmt: skip


class CurveCallback(L.Callback):
    """The learning curve: :func:`evaluate` of the module's SDNet on each test set every ``every`` steps and at
    the last step. ``points``: ``{"step", "train_seconds" (training wall time, evaluations excluded), <family>:
    evaluate(...)}``."""

    def __init__(self, name: str, test: dict, camera, every: int) -> None:
        self.name, self.test, self.camera, self.every = name, test, camera, every
        self.focus = torch.tensor(camera.focus_distances_m)
        self.points: list[dict] = []
        self.train_s, self._mark = 0.0, 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: SDGSModule) -> None:
        self.points, self.train_s, self._mark = [], 0.0, time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: SDGSModule, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step  # optimizer steps taken, this batch's included
        if step % self.every and step != trainer.max_steps:
            return
        self.train_s += time.perf_counter() - self._mark
        point = {"step": step, "train_seconds": round(self.train_s, 1)}
        for family, (s, d) in self.test.items():
            point[family] = evaluate(pl_module.sdnet, s, d, self.camera, self.focus)
        self.points.append(point)
        print(f"[{self.name}] step {step} ({self.train_s:.0f} s): " + ", ".join(
            f"{f} AbsRel {point[f]['abs_rel']:.3f} near {point[f]['near_abs_rel']:.3f} "
            f"δ1 {point[f]['delta1']:.1f}" for f in self.test), flush=True)  # fmt: skip
        self._mark = time.perf_counter()


def train(name: str, dm: SyntheticDataModule, test: dict, steps: int, eval_every: int, cache_dir: str,
          seed: int = 0) -> dict:  # fmt: skip
    """Run ``name`` (:data:`RUNS`) for ``steps`` optimizer steps: ``{"steps", "wall_seconds", "curve"}``."""
    L.seed_everything(seed, workers=True, verbose=False)
    model = SDGSModule(**module_settings(name))
    curve = CurveCallback(name, test, dm.camera, eval_every)
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        callbacks=[GaussianSplattingStage(cache_dir=cache_dir, **SPLAT), curve],
    )  # fmt: skip
    t0 = time.perf_counter()
    trainer.fit(model, dm)
    return {"steps": trainer.global_step, "wall_seconds": round(time.perf_counter() - t0, 1), "curve": curve.points}


def figure(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = list(result["constant"])
    fig, axes = plt.subplots(1, len(fams), figsize=(5.5 * len(fams), 3.4), sharey=True)
    for ax, fam in zip(axes, fams):
        for name, run in result["runs"].items():
            pts = [(p["step"], p[fam]["abs_rel"]) for p in run["curve"]]
            ax.plot(*zip(*pts), marker="o", ms=3, label=name)
        ax.axhline(result["constant"][fam]["abs_rel"], color="k", ls="--", lw=0.8, label="constant")
        ax.axhline(
            result["splatting_stage"][fam]["abs_rel"], color="g", ls=":", lw=0.8, label="splatting stage (stack)"
        )
        ax.set(xlabel="training steps", ylabel="test AbsRel (DFV)", title=f"test textures: {fam}")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


#: the reference of the signal ablations: the default, all signals
REFERENCE = "procedural"
ABLATIONS = {
    REFERENCE: "all signals (the default)",
    "procedural-no-confidence": "without the splatting confidence (every pixel alike)",
    "procedural-no-siamese": "without Siamese consistency",
    "procedural-no-blur-render": "without the blur re-render (and DepthNet's re-render)",
    "procedural-abs-rel-loss": "all signals, the AbsRel loss instead of the log-depth L1",
    "procedural-seed-1": "all signals, training seed 1 instead of 0 (the noise floor)",
    "procedural-seed-2": "all signals, training seed 2 instead of 0 (the noise floor)",
}
SEED_RUNS = ("procedural-seed-1", "procedural-seed-2")


def verdict(targets: dict[str, bool]) -> str:
    """A bar's targets as ``name: yes|NO, ...``."""
    return ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in targets.items())


def fmt_row(r: dict | None) -> str:
    return f"{r['abs_rel']:.3f} / {r['near/abs_rel']:.3f} / {r['delta1']:.1f}" if r else "–"


def bar_section(bar: dict) -> list[str]:
    """The Lightning table of ``make bench-train`` and its ablation table of the self-supervised signals."""
    lines = ["", "## The whole pipeline (`make bench-train`, Lightning, SDNet + DepthNet)", ""]
    lines += ["| test set | self-sup. AbsRel / near / δ1 | supervised | constant | bar |", "|---|---|---|---|---|"]
    for name, rows in bar["rows"].items():
        lines.append(f"| {name} | {fmt_row(rows.get('self-supervised'))} | {fmt_row(rows.get('supervised'))} | "
                     f"{fmt_row(rows.get('constant'))} | {verdict(bar['bar'][name]['targets'])} |")  # fmt: skip
    have = [name for name in ABLATIONS if name in bar["rows"]]
    if len(have) > 1:
        lines += [
            "",
            "### Ablation of the self-supervised signals (quickstart budget, pink held-out scenes)",
            "",
            "One signal off at a time, all else the default. DepthNet's share: each run's SDNet depth z0 (what the",
            "model gives without DepthNet) beside its refined depth.",
            "",
            "| self-supervised training | AbsRel / near / δ1 (%) | without DepthNet (z0): AbsRel / δ1 (%) | fit |",
            "|---|---|---|---|",
        ]
        for name in have:
            r = bar["rows"][name]["self-supervised"]
            z0 = f"{r['z0/abs_rel']:.3f} / {r['z0/delta1']:.1f}" if "z0/abs_rel" in r else "–"
            fit = bar["fit_seconds"][name].get("self-supervised")
            lines.append(f"| {ABLATIONS[name]} | {fmt_row(r)} | {z0} | {f'{fit:.0f} s' if fit else '–'} |")
        if seeds := [n for n in SEED_RUNS if n in have]:
            ss = lambda name: bar["rows"][name]["self-supervised"]  # noqa: E731
            noise = {k: max(abs(ss(n)[k] - ss(REFERENCE)[k]) for n in seeds) for k in ("abs_rel", "near/abs_rel")}
            beyond = [
                f"{ABLATIONS[n]} ({k} {ss(n)[k] - ss(REFERENCE)[k]:+.3f})"
                for n in have if n not in (REFERENCE, *seeds) for k in noise
                if abs(ss(n)[k] - ss(REFERENCE)[k]) > noise[k]
            ]  # fmt: skip
            depthnet = max(abs(ss(n)["abs_rel"] - ss(n)["z0/abs_rel"]) for n in have if "z0/abs_rel" in ss(n))
            lines += [
                "",
                f"Computed: the other seeds differ from the reference by up to {noise['abs_rel']:.3f} in AbsRel and "
                f"{noise['near/abs_rel']:.3f} in near AbsRel; AbsRel or near AbsRel differences from the reference "
                "beyond that: " + ("; ".join(beyond) if beyond else "none") + ". DepthNet moves AbsRel from "
                f"SDNet's z0 by at most {depthnet:.3f} in these runs.",
            ]
    return lines


def photometric_section(bar: dict) -> list[str]:
    """Each network row with and without the photometric augmentation, on both families."""
    # (row, experiment with it, experiment without it): off by default for both rows
    pairs = [
        ("self-supervised", "procedural-photometric", "procedural"),
        ("supervised", "procedural-supervised-photometric", "procedural"),
    ]
    rows = bar["rows"]
    if not all(f"{e}{g}" in rows for _, a, b in pairs for e in (a, b) for g in ("", "-geometric")):
        return []
    lines = [
        "",
        "### Photometric augmentation (gain, white balance, sensor noise; `data.init_args.photometric`)",
        "",
        "| row | test textures | with: AbsRel / near / δ1 (%) | without | RMSE with / without |",
        "|---|---|---|---|---|",
    ]
    for row, with_, without in pairs:
        for family, g in (("pink", ""), ("geometric (unseen)", "-geometric")):
            a, b = rows[with_ + g][row], rows[without + g][row]
            lines.append(f"| {row} | {family} | {fmt_row(a)} | {fmt_row(b)} | {a['rmse']:.3f} / {b['rmse']:.3f} |")
    return lines


def seeds_section(bar: dict) -> list[str]:
    """Supervised vs self-supervised over three training seeds (``seed_summary`` of ``make bench-train``)."""
    summary = bar.get("seed_summary") or {}
    if not summary:
        return []
    names = {"abs_rel": "AbsRel", "near/abs_rel": "near AbsRel", "delta1": "δ1 (%)", "rmse": "RMSE (m)"}
    lines = [
        "",
        "### Supervised vs self-supervised over training seeds (quickstart budget)",
        "",
        "Training seeds 0, 1, 2 (`procedural`, `procedural-seed-1`, `procedural-seed-2`; initial weights, batch",
        "order, augmentation draws; the same scenes). Per seed, then the mean; last column: on how many seeds the",
        "supervised row is at least as good, and whether its mean is.",
        "",
        "| test textures | metric | self-supervised | supervised | supervised at least as good |",
        "|---|---|---|---|---|",
    ]
    for family, metrics in summary.items():
        for key, m in metrics.items():
            f = "{:.1f}" if key == "delta1" else "{:.3f}"
            cells = [", ".join(f.format(v) for v in m[r]["seeds"]) + f" (mean {f.format(m[r]['mean'])})"
                     for r in ("self-supervised", "supervised")]  # fmt: skip
            won = m["supervised_at_least_as_good"]
            verdict_ = f"{won['seeds']} of {won['of']} seeds; mean: {'yes' if won['on_the_mean'] else 'NO'}"
            lines.append(f"| {family} | {names[key]} | {cells[0]} | {cells[1]} | {verdict_} |")
    return lines


def mixed_section(bar: dict) -> list[str]:
    """Both rows trained on the ``mixed`` family (with textureless regions) against the default (pink)."""
    rows = bar["rows"]
    pairs = [("pink", "procedural", "procedural-mixed-pink"), ("geometric (unseen)", "procedural-geometric",
             "procedural-mixed-geometric"), ("mixed", None, "procedural-mixed")]  # fmt: skip
    if not all(m in rows for _, _, m in pairs):
        return []
    lines = [
        "",
        "### Training textures with flat regions (`data.init_args.texture=mixed`)",
        "",
        "Both rows trained on the `mixed` family (each texture pink or posterised, so with far more textureless",
        "pixels than pink) instead of pink; the same scenes, budget and settings. AbsRel / near / δ1 (%),",
        "training seed 0 (seeds 0, 1, 2: the seed table above).",
        "",
        "| test textures | self-sup., trained on pink | on mixed | supervised, trained on pink | on mixed |",
        "|---|---|---|---|---|",
    ]
    for family, pink, mixed in pairs:
        a = lambda name, row: fmt_row(rows[name].get(row)) if name else "–"  # noqa: E731
        lines.append(f"| {family} | {a(pink, 'self-supervised')} | {a(mixed, 'self-supervised')} | "
                     f"{a(pink, 'supervised')} | {a(mixed, 'supervised')} |")  # fmt: skip
    return lines


def texture_section(texture: dict) -> list[str]:
    """``make bench-texture-error``: near AbsRel per local-contrast bin of the sharp texture."""
    lines = [
        "",
        "## Where the single-image error lives: texture contrast (`make bench-texture-error`)",
        "",
        f"{texture['data']}. Pixels binned by the local contrast of the sharp texture ({texture['strength']}):",
        "one defocused image shows blur only where there is texture to blur. Near AbsRel (GT < 1.5 m, DFV clip)",
        "pooled over all pixels of the bin, then the near bias ln(pred / GT) (< 0: too near). Pooled per pixel, so",
        "the `all` column differs from `sdgs test`'s per-image means.",
        "",
        "![texture error](texture_error.png)",
    ]
    for family, models in texture["families"].items():
        means = texture.get("seed_means", {}).get(family, {})
        seeded = {label for labels in SEED_GROUPS.values() for label in labels}
        rows = {f"{g} (mean of seeds 0, 1, 2)": cells for g, cells in means.items()}
        rows |= {name: r for name, r in models.items() if name not in seeded or not means}
        bins = list(next(iter(models.values())))
        shares = ", ".join(f"{b} {100 * models['constant'][b]['pixel_share']:.0f} %" for b in bins if b != "all")
        lines += ["", f"**{family}** textures (pixel shares: {shares})", ""]
        lines += ["| model | " + " | ".join(bins) + " |", "|---|" + "---|" * len(bins)]
        for name, r in rows.items():
            cells = [
                "–" if r[b]["near_abs_rel"] is None else f"{r[b]['near_abs_rel']:.3f} ({r[b]['near_log_ratio']:+.2f})"
                for b in bins
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def long_section(long: dict) -> list[str]:
    """``make bench-train-long``: the table at the long budget and its learning curves."""
    lines = [
        "",
        "## Long budget (`make bench-train-long`, Lightning, SDNet + DepthNet)",
        "",
        f"{long['config']}. Test: {long['protocol']}.",
        "",
        "![long-budget curves](train_long.png)",
        "",
        "| test set | row | AbsRel / near / δ1 (%) | RMSE (m) | fit |",
        "|---|---|---|---|---|",
    ]
    for name, rows in long["rows"].items():
        for row, r in rows.items():
            fit = long["fit_seconds"][name].get(row)
            lines.append(
                f"| {name} | {row} | {fmt_row(r)} | {r['rmse']:.3f} | {f'{fit / 60:.0f} min' if fit else '–'} |"
            )
    lines += [
        "",
        "Validation curves (32 held-out pink scenes):",
        "",
        "| row | step | minutes | AbsRel | near | δ1 (%) |",
    ]
    lines.append("|---|---|---|---|---|---|")
    for row, points in long["curves"].items():
        for p in points:
            lines.append(f"| {row} | {p['step']} | {p.get('time/fit_seconds', float('nan')) / 60:.1f} | "
                         f"{p['val/abs_rel']:.3f} | {p['val/near/abs_rel']:.3f} | {p['val/delta1']:.1f} |")  # fmt: skip
    for name, b in long["bar"].items():
        if b.get("targets"):  # an experiment of the supervised row alone has no bar
            lines += ["", f"Bar on {name}: {verdict(b['targets'])}."]
    aim = long["aim"]
    lines += [
        "",
        f"Aim near AbsRel <= 1.5 x the splatting stage's: {aim['near_abs_rel_over_splatting_stage']:.2f} x "
        f"({'met' if aim['near abs_rel <= 1.5 x splatting stage'] else 'not met'}).",
    ]
    return lines


def single_image_page(result: dict, bar: dict | None, long: dict | None = None, texture: dict | None = None) -> str:
    """The text of ``docs/single_image.md`` (``make docs`` writes it: ``docs.make_results``): this run's tables
    and plots (``result``: ``bench/single_image_oracle.json``), the Lightning bar, ablations and seeds of
    ``bench/train.json``, the texture-contrast breakdown of ``bench/texture_error.json`` and the long
    budget of ``bench/train_long.json`` (each None: its sections are left out)."""
    fams = list(result["constant"])
    last = {name: run["curve"][-1] for name, run in result["runs"].items() if run["curve"]}
    # a JSON of the earlier plain loop (a time budget, no "command"/"trainer") reads as it was produced
    command = result.get("command", f"python -m bench.single_image_oracle --minutes {result.get('minutes', 0):g}")
    lines = [
        "# Single-image depth: diagnosis",
        "",
        f"Produced by `{command}` "
        f"({result['wall_seconds']:.0f} s); numbers from `bench/single_image_oracle.json`. {result['setup']}.",
        f"{result['protocol']} ({result['constant_m']:.3f} m).",
        "",
        "## Where blur carries depth",
        "",
        "![CoC vs depth](single_image_coc.png)",
        "",
        "With FoD500 optics the CoC grows steeply in front of each focus plane and saturates behind it; the",
        "Gaussian PSF has σ = CoC/4, so most of the range blurs by less than one pixel: one image says little",
        "about far depth, and around each focus plane the sign (in front or behind) is ambiguous from blur alone.",
        "",
        f"## Learning curves (SDNet alone, {result.get('trainer', 'plain loop')})",
        "",
        "![curves](single_image_oracle.png)",
        "",
        "| run | steps | " + " | ".join(f"{f}: AbsRel / near / δ1 (%)" for f in fams) + " |",
        "|---|---|" + "---|" * len(fams),
    ]
    for name, p in last.items():
        cells = [f"{p[f]['abs_rel']:.3f} / {p[f]['near_abs_rel']:.3f} / {p[f]['delta1']:.1f}" for f in fams]
        lines.append(f"| {name} | {p['step']} | " + " | ".join(cells) + " |")
    for row in ("splatting_stage", "constant"):
        cells = [f"{result[row][f]['abs_rel']:.3f} / {result[row][f]['near_abs_rel']:.3f} / "
                 f"{result[row][f]['delta1']:.1f}" for f in fams]  # fmt: skip
        label = "splatting stage (whole stack)" if row == "splatting_stage" else "constant"
        lines.append(f"| {label} | – | " + " | ".join(cells) + " |")
    focus = ", ".join(f"{d:g}" for d in FOD500.focus_distances_m)
    lines += ["", f"## Per focus index ({focus} m) and depth band, pink test textures, end of each run", ""]
    lines += ["| run | band | k0 | k1 | k2 | k3 | k4 |", "|---|---|---|---|---|---|---|"]
    for name, p in last.items():
        lines.append(f"| {name} | all | " + " | ".join(f"{v:.3f}" for v in p["pink"]["abs_rel_per_focus_index"]) + " |")
        for band, values in p["pink"]["abs_rel_per_band_and_focus_index"].items():
            lines.append(f"| | {band} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    lines += [
        "",
        "Relative error per band is of depth clipped at 1.5 m, so the far band only measures whether a far pixel",
        "comes out beyond 1.5 m.",
        "",
        "## Findings of this run (computed from the numbers above)",
        "",
    ]
    const = result["constant"]
    for name, p in last.items():
        per = p["pink"]["abs_rel_per_focus_index"]
        ratios = ", ".join(
            f"{f} AbsRel {p[f]['abs_rel'] / const[f]['abs_rel']:.2f} x the constant's, near "
            f"{p[f]['near_abs_rel'] / const[f]['near_abs_rel']:.2f} x, δ1 {p[f]['delta1'] - const[f]['delta1']:+.1f}"
            for f in fams
        )
        lines.append(f"- {name}: {ratios}; spread of AbsRel over the five focus indices {max(per) - min(per):.3f}")
    lines += [
        "",
        "A spread over the focus indices far below the errors means the output hardly depends on which image (so",
        "which blur) the network saw: a depth prior, not blur → depth.",
    ]
    if bar:
        lines += bar_section(bar) + photometric_section(bar) + seeds_section(bar) + mixed_section(bar)
    if texture:
        lines += texture_section(texture)
    if long:
        lines += long_section(long)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1200, help="optimizer steps per run")
    parser.add_argument("--batch-size", type=int, default=8, help="scenes per step (two images of each)")
    parser.add_argument("--train", type=int, default=1024, help="training scenes")
    parser.add_argument("--test", type=int, default=48, help="held-out scenes per texture family")
    parser.add_argument("--size", type=int, default=SIZE, help="image size (px), a centre crop of the sensor")
    parser.add_argument("--eval-every", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0, help="training seed (weights, batch order, flips)")
    parser.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--cache-dir", default="cache/splat", help="the splatting stage's fit cache")
    parser.add_argument("--out", default="bench/single_image_oracle.json")
    parser.add_argument("--figure", default="docs/single_image_oracle.png")
    args = parser.parse_args(argv)
    # one process, in-memory scenes: no loader workers wanted; Lightning's nudge about them is noise here
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    t0 = time.perf_counter()
    data = {"num_val": 0, "size": args.size, "batch_size": args.batch_size}
    dm = SyntheticDataModule(num_train=args.train, num_test=args.test, texture="pink", **data)
    # the same held-out geometry in the training family and in one it never sees
    tests = {"pink": dm, "geometric": SyntheticDataModule(num_train=0, num_test=args.test, texture="geometric", **data)}
    stage = GaussianSplattingStage(cache_dir=args.cache_dir, **SPLAT)
    stage.bind(dm)  # the training fits now (cached), so no run's first steps pay for them
    stage.fields_for("train", range(args.train))
    gt = torch.stack([dm.dataset("train").load(i)["depth"] for i in range(args.train)])
    test = {fam: test_set(t) for fam, t in tests.items()}
    print(f"data and splatting fits: {time.perf_counter() - t0:.0f} s")
    const = median_depth(gt, clip_max=DFV_CLIP_M)
    baselines: dict[str, dict] = {"constant": {}, "splatting_stage": {}}
    for fam, (_, d) in test.items():
        stage.bind(tests[fam])
        fits = stage.fields_for("test", range(args.test))
        splat = torch.stack([fits[i]["depth"] for i in range(args.test)])
        for row, pred in (("constant", torch.full_like(d, const)), ("splatting_stage", splat)):
            v, _ = per_image_depth_errors(pred, d, "dfv")
            n, _ = per_image_depth_errors(pred, d, "dfv", near_max=DFV_CLIP_M)
            baselines[row][fam] = {"abs_rel": float(v["abs_rel"].mean()), "near_abs_rel": float(n["abs_rel"].mean()),
                                   "delta1": float(v["delta1"].mean())}  # fmt: skip
    print("baselines:", baselines)
    runs = {name: train(name, dm, test, args.steps, args.eval_every, args.cache_dir, args.seed) for name in args.runs}
    result = {
        "setup": f"SDNet 16/3 alone through SDGSModule (stage sdnet, its depth term only), AdamW 2e-3 with cosine "
        f"decay over {args.steps} steps, {args.batch_size} scenes x 2 images a step, losses clipped at 1.5 m, "
        f"library flips, {args.train} pink training scenes ({args.size} px, FoD500 optics), {args.test} held-out "
        f"scenes per texture family, training seed {args.seed}",
        "protocol": "DFV; one defocused image, all 5 focus indices; constant = median clipped train depth",
        "trainer": "SDGSModule, stage sdnet",
        "command": shlex.join(["python", "-m", "bench.single_image_oracle", *(sys.argv[1:] if argv is None else argv)]),
        "constant_m": const,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "wall_seconds": round(time.perf_counter() - t0, 1),
        **baselines,
        "runs": runs,
    }
    write_json(args.out, result)
    figure(result, Path(args.figure))
    coc_figure(Path(args.figure).with_name("single_image_coc.png"))
    print(f"wrote {args.out}; `make docs` (python -m docs.make_results) lays out docs/single_image.md from it")


if __name__ == "__main__":
    main()
