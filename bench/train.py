"""Quickstart quality bar: single-image depth against the constant and no-learning baselines, in one run.

    python -m bench.train                      -> bench/quickstart.json  (make bench-train, ~2.5 h)
    python -m bench.train --long               -> bench/train_long.json, docs/train_long.png
                                                  (make bench-train-long, ~60 min)
    python -m bench.train --only procedural    reruns one experiment, keeps the others' entries
    FORCE=1 retrains finished rows.

Runs, through :mod:`sdgs.cli.report` (``sdgs fit`` / ``sdgs test`` subprocesses, run folders under ``results/``,
so ``make reproduce-table`` reuses them):

* ``procedural``: the quickstart config as a user runs it (``pink`` textures): self-supervised, supervised
  (same networks, data and budget, ground truth on every valid pixel, its default loss: AbsRel), splatting
  stage,
  depth from focus, constant;
* ``procedural-geometric``: the same two models, not retrained, on the same held-out scenes rendered with the
  ``geometric`` texture family they never saw (the cross-generator check);
* ``procedural-coc-loss``: the quickstart with a CoC-space loss weighted by the splatting confidence and no
  blur inputs, self-supervised: the loss and inputs of the default against that alternative at one budget;
* ``procedural-no-confidence`` (and ``-geometric``): the default without the splatting confidence weighting
  the self-supervised terms, on both families;
* ``procedural-no-siamese``, ``procedural-no-blur-render``: the default with one self-supervised signal off
  (the ablation table; DepthNet's share is read from every row's ``z0/*`` metrics, SDNet's own depth);
* ``procedural-abs-rel-loss``: the self-supervised default with the AbsRel loss (the supervised row's);
* ``procedural-photometric``, ``procedural-supervised-photometric`` (and ``-seed-1``, ``-seed-2``; all with
  ``-geometric``): the photometric augmentation (gain, white balance, sensor noise; off by default) on, for
  the self-supervised row and for the supervised row (three seeds);
* ``procedural-supervised-log-depth`` (and ``-geometric``): the supervised row with the log-depth L1 (the
  self-supervised row's loss) instead of AbsRel;
* ``procedural-mixed`` (and ``-seed-1``, ``-seed-2``; each with ``-pink``, ``-geometric``): both rows trained
  on the ``mixed`` texture family (pink or posterised, with textureless regions), tested on it, on pink and on
  geometric (never seen);
* ``procedural-seed-1``, ``procedural-seed-2`` (and ``-geometric``): the default with other training seeds, the
  same scenes, both network rows: the noise floor of the ablations and of supervised <= self-supervised;
* ``fod500-folder-144``: ``sdgs fit`` on a FoD500-format folder of 144 training stacks at 64 px (written by
  the procedural generator, read through the FoD500 loader), self-supervised, 56 epochs;
* ``--long``: ``procedural-long`` (and ``-geometric``): the same rows at the long budget (:data:`LONG`), with
  the validation learning curves of both network rows (step, wall time, AbsRel, near AbsRel, δ1) and the
  aim near AbsRel <= 1.5 x the splatting stage's.

Quality bar, per test set: self-supervised AbsRel <= 0.75 x the constant's, near AbsRel <= 0.5 x the
constant's near AbsRel, delta1 >= the constant's - 5 points; supervised <= self-supervised (AbsRel, near
AbsRel); fit <= 10 minutes (quickstart) / 15 minutes (144 stacks). The constant is the training split's
median depth as the DFV protocol scores it (clipped at 1.5 m).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import time
from pathlib import Path

from bench.common import write_json
from sdgs.cli.report import Experiment, load_experiments, run_table, write_table

QUICKSTART = "lightning_configs/quickstart.yaml"


def folder_144(results: str) -> Experiment:
    """The within-generator check on files: a FoD500-format folder of 144 stacks."""
    return Experiment(
        name="fod500-folder-144",
        config=QUICKSTART,
        overrides={
            "data.init_args.num_train": 144,
            "data.init_args.data_dir": f"{results}/fod500-folder-144/data",
            "trainer.max_epochs": 56,
            "trainer.check_val_every_n_epoch": 8,
        },
    )


#: the photometric augmentation on (gain, white balance, sensor noise; off by default)
PHOTO = {"data.init_args.photometric": True}


def tested_on(exp: Experiment, texture: str) -> Experiment:
    """``exp``'s models, not retrained, tested on the same held-out scenes with another texture family."""
    return Experiment(
        name=f"{exp.name}-{texture}",
        config=exp.config,
        trained_in=exp.name,
        overrides={**exp.overrides, "data.init_args.texture": texture},
    )


def on_geometric(exp: Experiment) -> Experiment:
    """``exp``'s models, not retrained, tested on the same held-out scenes with the ``geometric`` textures."""
    return tested_on(exp, "geometric")


def seed_name(base: str, seed: int) -> str:
    """The experiment name of ``base`` trained with ``seed_everything=seed`` (seed 0, the default: ``base``)."""
    return base if seed == 0 else f"{base}-seed-{seed}"


def seeded(base: str, overrides: dict, seeds: tuple[int, ...]) -> list[Experiment]:
    """The quickstart with ``overrides``, once per training seed, named by :func:`seed_name`."""
    return [
        Experiment(
            name=seed_name(base, s), config=QUICKSTART, overrides={**overrides, **({"seed_everything": s} if s else {})}
        )
        for s in seeds
    ]


def seed_note(exp: Experiment) -> str:
    """``", seed_everything=N"`` for an experiment with a seed override, else ``""`` (the test-set texts)."""
    return f", seed_everything={exp.overrides['seed_everything']}" if "seed_everything" in exp.overrides else ""


#: the same budget and data with a CoC-space L1 weighted by the splatting confidence and no blur inputs: the
#: alternative to the default's log-depth loss with blur inputs
COC_LOSS = Experiment(
    name="procedural-coc-loss",
    config=QUICKSTART,
    overrides={
        "model.target_space": "coc",
        "model.blur_inputs": False,
        "model.use_confidence": True,
        "model.loss_far_m": "null",
    },
)
#: the default without the splatting confidence weighting the self-supervised terms (every pixel alike), on
#: both texture families: the confidence ablation
NO_CONFIDENCE = Experiment(
    name="procedural-no-confidence", config=QUICKSTART, overrides={"model.use_confidence": False}
)
NO_CONFIDENCE_GEOMETRIC = on_geometric(NO_CONFIDENCE)
#: the other self-supervised signals, one off at a time (the ablation table). The DepthNet ablation needs
#: no run: every test also scores SDNet's own depth z0 (``z0/*`` in the rows)
NO_SIAMESE = Experiment(name="procedural-no-siamese", config=QUICKSTART, overrides={"model.siamese_weight": 0.0})
NO_BLUR_RENDER = Experiment(
    name="procedural-no-blur-render",
    config=QUICKSTART,
    overrides={"model.blur_weight": 0.0, "model.depth_render_weight": 0.0},
)
#: the self-supervised default with the supervised row's loss (AbsRel itself) instead of the log-depth L1
ABS_REL_LOSS = Experiment(
    name="procedural-abs-rel-loss", config=QUICKSTART, overrides={"model.target_space": "abs_rel"}
)
#: the default with other training seeds (initial weights, batch order, augmentation draws; the same scenes),
#: both network rows and both texture families: the noise floor of the ablation table and of "supervised <=
#: self-supervised"
SEEDS = seeded("procedural", {}, (1, 2))
SEEDS_GEOMETRIC = [on_geometric(e) for e in SEEDS]
#: the photometric augmentation (gain, white balance, sensor noise) on, for each row: self-supervised, and
#: supervised with seeds 0-2
PHOTOMETRIC = Experiment(name="procedural-photometric", config=QUICKSTART, overrides=PHOTO)
PHOTOMETRIC_GEOMETRIC = on_geometric(PHOTOMETRIC)
SUPERVISED_PHOTOMETRIC = seeded("procedural-supervised-photometric", PHOTO, (0, 1, 2))
SUPERVISED_PHOTOMETRIC_GEOMETRIC = [on_geometric(e) for e in SUPERVISED_PHOTOMETRIC]
#: the supervised row with the self-supervised row's loss (log-depth L1) instead of AbsRel: the loss's share in
#: the metrics where supervised and self-supervised differ (AbsRel's minimiser errs near, which costs δ1)
SUPERVISED_LOG_DEPTH = Experiment(
    name="procedural-supervised-log-depth", config=QUICKSTART, overrides={"model.target_space": "log_depth"}
)
SUPERVISED_LOG_DEPTH_GEOMETRIC = on_geometric(SUPERVISED_LOG_DEPTH)
#: both rows trained on the ``mixed`` texture family (pink or posterised: 28 % of pixels textureless, as
#: against 1 % in pink), tested on it, on pink and on the geometric family (still never seen): whether the
#: supervised row's loss on the geometric family's flat regions (bench.texture_error) comes from training
#: textures without any (seeds 0, 1, 2)
MIXED = seeded("procedural-mixed", {"data.init_args.texture": "mixed"}, (0, 1, 2))
MIXED_TESTS = [test for e in MIXED for test in (tested_on(e, "pink"), on_geometric(e))]
NETWORK_ROWS = ("self-supervised", "supervised")
ALL_ROWS = (*NETWORK_ROWS, "splatting stage", "depth from focus", "constant")


def bar(rows: dict, budget_s: float | None) -> dict:
    """The quality bar's ratios and booleans for one test set (``rows``: run_table's rows of one experiment)."""
    m = lambda row, key: rows[row]["metrics"][f"test/{key}"]  # noqa: E731
    ss, const = "self-supervised", "constant"
    if ss not in rows:  # an experiment of the supervised row alone: the bar is the self-supervised model's
        return {"targets": {}}
    out = {
        "abs_rel_over_constant": round(m(ss, "abs_rel") / m(const, "abs_rel"), 3),
        "near_abs_rel_over_constant": round(m(ss, "near/abs_rel") / m(const, "near/abs_rel"), 3),
        "delta1_minus_constant": round(m(ss, "delta1") - m(const, "delta1"), 1),
    }
    targets = {
        "abs_rel <= 0.75 x constant": out["abs_rel_over_constant"] <= 0.75,
        "near abs_rel <= 0.5 x constant": out["near_abs_rel_over_constant"] <= 0.5,
        "delta1 >= constant - 5": out["delta1_minus_constant"] >= -5,
    }
    if "supervised" in rows:
        for key in ("abs_rel", "near/abs_rel"):
            out[f"supervised_over_self_{key}"] = round(m("supervised", key) / m(ss, key), 3)
            targets[f"supervised <= self-supervised ({key})"] = m("supervised", key) <= m(ss, key)
    fit = rows[ss].get("fit_seconds")
    if budget_s is not None and fit is not None:
        out["fit_seconds"] = fit
        targets[f"fit <= {budget_s:.0f} s"] = fit <= budget_s
    out["targets"] = targets
    return out


#: metrics of the seed summary and whether lower is better
SEED_METRICS = {"abs_rel": True, "near/abs_rel": True, "delta1": False, "rmse": True}


def seed_summary(rows: dict[str, dict], groups: dict[str, dict[str, list[str]]]) -> dict:
    """Supervised vs self-supervised over training seeds: per comparison and metric, each row's values (one per
    seed), their mean, and on how many seeds and on the mean supervised is at least as good.

    ``rows``: :func:`pick`'s rows per experiment; ``groups``: comparison -> network row -> the experiments
    (one per seed, in seed order) whose row it takes. Comparisons missing a row in any experiment are left out.
    """
    out: dict = {}
    for label, sources in groups.items():
        if not all(n in rows and r in rows[n] for r in NETWORK_ROWS for n in sources[r]):
            continue
        out[label] = {}
        for key, lower in SEED_METRICS.items():
            vals = {r: [rows[n][r][key] for n in sources[r]] for r in NETWORK_ROWS}
            ok = lambda sup, ss, lower=lower: sup <= ss if lower else sup >= ss  # noqa: E731
            mean = {r: round(sum(v) / len(v), 4) for r, v in vals.items()}
            out[label][key] = {
                **{r: {"seeds": v, "mean": mean[r]} for r, v in vals.items()},
                "supervised_at_least_as_good": {
                    "seeds": sum(ok(a, b) for a, b in zip(vals["supervised"], vals["self-supervised"], strict=True)),
                    "of": len(vals["supervised"]),
                    "on_the_mean": ok(mean["supervised"], mean["self-supervised"]),
                },
            }
    return out


def seed_groups() -> dict[str, dict[str, list[str]]]:
    """The comparisons of the seed summary: both rows as configured (seeds 0-2), the self-supervised row
    against the supervised one with the photometric augmentation, on both texture families, and both rows
    trained on the mixed family, on it, on pink and on geometric."""
    default = [seed_name("procedural", s) for s in (0, 1, 2)]
    photo = [e.name for e in SUPERVISED_PHOTOMETRIC]
    out = {}
    for family, g in (("pink", ""), ("geometric", "-geometric")):
        out[family] = {r: [n + g for n in default] for r in NETWORK_ROWS}
        out[f"{family}, supervised with photometric"] = {
            "self-supervised": [n + g for n in default],
            "supervised": [n + g for n in photo],
        }
    mixed = [e.name for e in MIXED]
    for family, g in (("mixed", ""), ("pink", "-pink"), ("geometric", "-geometric")):
        out[f"{family}, both rows trained on mixed"] = {r: [n + g for n in mixed] for r in NETWORK_ROWS}
    return out


#: the long budget (``make bench-train-long``): the quickstart's networks and settings, 4x the scenes
#: (2 048) and 4.5x the steps (2 304 = 18 epochs of 128), validation on 32 scenes every 2 epochs. On 2 CPU
#: cores the self-supervised fit took 30 minutes (both cores busy: about 57 CPU-minutes) and the supervised
#: one, the same steps without rendering, 22 minutes; the whole bench about an hour.
LONG = Experiment(
    name="procedural-long",
    config=QUICKSTART,
    overrides={
        "data.init_args.num_train": 2048,
        "data.init_args.num_val": 32,
        "trainer.max_epochs": 18,
        "trainer.check_val_every_n_epoch": 2,
    },
)
LONG_GEOMETRIC = on_geometric(LONG)
#: the long budget's supervised row with the photometric augmentation
LONG_SUPERVISED_PHOTOMETRIC = Experiment(
    name="procedural-long-supervised-photometric",
    config=QUICKSTART,
    overrides={**LONG.overrides, **PHOTO},
)
LONG_SUPERVISED_PHOTOMETRIC_GEOMETRIC = on_geometric(LONG_SUPERVISED_PHOTOMETRIC)
CURVE_KEYS = ("time/fit_seconds", "val/abs_rel", "val/near/abs_rel", "val/delta1")


def curve(run_folder: Path) -> list[dict]:
    """Validation points of one ``sdgs fit`` run: step, wall seconds of training so far, val AbsRel / near
    AbsRel / δ1. Reads every ``logs/version_N/metrics.csv`` in order (a resumed fit continues in a new
    version, whose clock restarts: its times are offset by the earlier parts'; ``sdgs test`` versions have
    no validation rows)."""
    logs = sorted((run_folder / "logs").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:]))
    points: dict[int, dict] = {}
    offset = 0.0
    for log in logs:
        with log.open() as f:
            part = [
                {"step": int(rec["step"]), **{k: float(rec[k]) for k in CURVE_KEYS if rec.get(k)}}
                for rec in csv.DictReader(f) if rec.get("val/abs_rel")
            ]  # fmt: skip
        for p in part:
            if "time/fit_seconds" in p:
                p["time/fit_seconds"] += offset
            points[p["step"]] = p  # a resume repeats the steps after its checkpoint: keep the latest
        offset = max([offset] + [p["time/fit_seconds"] for p in part if "time/fit_seconds" in p])
    if not points:
        raise FileNotFoundError(f"no validation rows in {run_folder}/logs/version_*/metrics.csv: trained by sdgs fit?")
    return [points[k] for k in sorted(points)]


def plot_curves(curves: dict[str, list[dict]], splat_near: float, const: dict, out: Path) -> None:
    """Val AbsRel, near AbsRel and δ1 against wall time for each network row (docs/train_long.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, key, title in zip(axes, CURVE_KEYS[1:], ("AbsRel", "near AbsRel (GT < 1.5 m)", "δ1 (%)"), strict=True):
        for row, points in curves.items():
            timed = [p for p in points if "time/fit_seconds" in p]  # runs from before it was logged have none
            ax.plot([p["time/fit_seconds"] / 60 for p in timed], [p[key] for p in timed], marker=".", label=row)
        ax.axhline(const[key.replace("val/", "")], color="grey", ls="--", label="constant (test)")
        if key == "val/near/abs_rel":
            ax.axhline(1.5 * splat_near, color="green", ls=":", label="1.5 x splatting stage (test)")
        ax.set_xlabel("training wall minutes (2 CPU cores)")
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    fig.suptitle("Long budget: validation curves (32 held-out pink scenes, all 5 focus indices)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def pick(rows: dict) -> dict:
    """The reported metrics of each row of one experiment."""
    keep = ("abs_rel", "rmse", "delta1", "near/abs_rel", "z0/abs_rel", "z0/delta1")
    return {
        row: {k.removeprefix("test/"): round(v, 4) for k, v in rows[row]["metrics"].items()
              if k.removeprefix("test/") in keep}
        for row in ALL_ROWS if row in rows
    }  # fmt: skip


def commit() -> str:
    """The checked-out commit (with ``+dirty`` when code has changes): which code produced the numbers.

    The benches' own outputs (``bench/*.json``, ``results/``, ``docs/``) do not count: ``--only`` merges into a
    copy of the committed JSON, which is not a change to the code that ran.
    """
    repo = Path(__file__).resolve().parents[1]
    run = lambda *cmd: subprocess.run(["git", *cmd], capture_output=True, text=True, cwd=repo).stdout.strip()  # noqa: E731
    head = run("rev-parse", "--short", "HEAD")
    outputs = [":(exclude)bench/*.json", ":(exclude)results", ":(exclude)docs"]
    dirty = run("status", "--porcelain", "--untracked-files=no", "--", ".", *outputs)
    return (head or "unknown") + ("+dirty" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=None, help="default bench/quickstart.json (--long: bench/train_long.json)")
    parser.add_argument("--results", default="results")
    parser.add_argument("--no-folder", action="store_true", help="skip the 144-stack FoD500-folder check")
    parser.add_argument("--long", action="store_true", help="the long budget (make bench-train-long, ~60 min)")
    parser.add_argument(
        "--only", nargs="+", metavar="EXPERIMENT",
        help="run only these experiments; the others' entries are kept from --out as they are (with the date "
        "and commit that produced them, under 'ran')",
    )  # fmt: skip
    args = parser.parse_args()
    out = Path(args.out or ("bench/train_long.json" if args.long else "bench/quickstart.json"))
    table_exps = {e.name: e for e in load_experiments("lightning_configs/table.yaml")}
    force = os.environ.get("FORCE") == "1"
    # (experiments, rows, fit budget in seconds of the bar); an experiment testing another's models has no fit
    if args.long:
        plan = [
            ([LONG, LONG_GEOMETRIC], ALL_ROWS, None),
            ([LONG_SUPERVISED_PHOTOMETRIC, LONG_SUPERVISED_PHOTOMETRIC_GEOMETRIC], ("supervised", "constant"), None),
        ]
    else:
        plan = [
            ([table_exps["procedural"], table_exps["procedural-geometric"]], ALL_ROWS, 600.0),
            ([COC_LOSS, NO_CONFIDENCE, NO_CONFIDENCE_GEOMETRIC], ("self-supervised", "constant"), 600.0),
            ([NO_SIAMESE, NO_BLUR_RENDER, ABS_REL_LOSS], ("self-supervised", "constant"), 600.0),
            ([*SEEDS, *SEEDS_GEOMETRIC], (*NETWORK_ROWS, "constant"), 600.0),
            ([PHOTOMETRIC, PHOTOMETRIC_GEOMETRIC], ("self-supervised", "constant"), 600.0),
            ([*SUPERVISED_PHOTOMETRIC, *SUPERVISED_PHOTOMETRIC_GEOMETRIC], ("supervised", "constant"), 600.0),
            ([*MIXED, *MIXED_TESTS], (*NETWORK_ROWS, "constant"), 600.0),
            ([SUPERVISED_LOG_DEPTH, SUPERVISED_LOG_DEPTH_GEOMETRIC], ("supervised", "constant"), 600.0),
        ]
        if not args.no_folder:
            stack_rows = ("self-supervised", "splatting stage", "depth from focus", "constant")
            plan.append(([folder_144(args.results)], stack_rows, 900.0))
    budgets = {e.name: None if e.trained_in else budget for exps, _, budget in plan for e in exps}
    if args.only:
        exps = [e for group, _, _ in plan for e in group]
        if unknown := sorted(set(args.only) - {e.name for e in exps}):
            raise SystemExit(f"--only: unknown experiment(s) {unknown}; this bench runs {sorted(e.name for e in exps)}")
        # an experiment that tests another's models reruns with it (its kept numbers would be stale)
        only = set(args.only) | {e.name for e in exps if e.trained_in in args.only}
        plan = [([e for e in group if e.name in only], rows, budget) for group, rows, budget in plan]
    table: dict = {}
    for exps, rows, _ in plan:
        if exps:
            table.update(run_table(exps, args.results, force, rows))
    if args.only:
        print("--only: results/bench_train*/table.md is left as it is (a full run writes it)")
    else:
        write_table(table, Path(args.results) / ("bench_train_long" if args.long else "bench_train"))
    previous = json.loads(out.read_text()) if args.only and out.is_file() else {}
    payload: dict = {"ran": {}, "rows": {}, "fit_seconds": {}, "bar": {}}
    for name in budgets:  # in plan order; experiments not rerun keep their entries, with when and what made them
        if name in table:
            rows = table[name]
            payload["ran"][name] = {"date": time.strftime("%Y-%m-%d %H:%M"), "commit": commit()}
            payload["rows"][name] = pick(rows)
            payload["fit_seconds"][name] = {r: rows[r].get("fit_seconds") for r in NETWORK_ROWS if r in rows}
            payload["bar"][name] = bar(rows, budgets[name])
        elif all(name in previous.get(key, {}) for key in ("rows", "fit_seconds", "bar")):
            payload["ran"][name] = previous.get("ran", {}).get(name, {"date": previous["date"], "commit": "unrecorded"})
            for key in ("rows", "fit_seconds", "bar"):
                payload[key][name] = previous[key][name]
    if not args.long:
        payload["seed_summary"] = seed_summary(payload["rows"], seed_groups())
    if args.long and "procedural-long" in table:
        rows = pick(table["procedural-long"])
        curves = {row: curve(Path(args.results) / "procedural-long" / row.replace(" ", "_")) for row in NETWORK_ROWS}
        splat_near = rows["splatting stage"]["near/abs_rel"]
        plot_curves(curves, splat_near, rows["constant"], Path("docs/train_long.png"))
        near = rows["self-supervised"]["near/abs_rel"]
        payload["curves"] = curves
        payload["aim"] = {
            "near_abs_rel_over_splatting_stage": round(near / splat_near, 3),
            "near abs_rel <= 1.5 x splatting stage": near <= 1.5 * splat_near,
        }
    elif args.long:
        payload.update({k: previous[k] for k in ("curves", "aim") if k in previous})
    write_json(
        out,
        {
            "config": f"{QUICKSTART} (procedural FoD500-like, 64 px, CPU); trained on the pink texture family"
            + ("; long budget: 2 048 scenes, 2 304 steps (bench.train.LONG)" if args.long else ""),
            "test_sets": {
                "procedural": "held-out procedural scenes (test seeds), pink textures (the training family)",
                "procedural-geometric": "the same held-out scenes, geometric textures (never seen in training)",
                "procedural-coc-loss": "held-out pink scenes; CoC-space L1 weighted by the splatting confidence, "
                "no blur inputs",
                "procedural-no-confidence": "held-out pink scenes; the default with model.use_confidence=false",
                "procedural-no-confidence-geometric": "the same model on the geometric textures",
                "fod500-folder-144": "held-out procedural scenes; trained on a FoD500-format folder of 144 stacks",
                "procedural-no-siamese": "held-out pink scenes; the default with model.siamese_weight=0",
                "procedural-no-blur-render": "held-out pink scenes; the default without the rendered losses "
                "(model.blur_weight=0, model.depth_render_weight=0)",
                **{
                    e.name: "held-out pink scenes; the default trained with "
                    f"seed_everything={e.overrides['seed_everything']}"
                    for e in SEEDS
                },
                **{f"{e.name}-geometric": "those models on the geometric textures (never seen)" for e in SEEDS},
                "procedural-abs-rel-loss": "held-out pink scenes; the default with model.target_space=abs_rel",
                "procedural-photometric": "held-out pink scenes; self-supervised with the photometric augmentation "
                "(data.init_args.photometric=true)",
                "procedural-photometric-geometric": "that model on the geometric textures (never seen)",
                **{
                    e.name: "held-out pink scenes; supervised with the photometric augmentation" + seed_note(e)
                    for e in SUPERVISED_PHOTOMETRIC
                },
                **{f"{e.name}-geometric": "that model on the geometric textures" for e in SUPERVISED_PHOTOMETRIC},
                "procedural-supervised-log-depth": "held-out pink scenes; supervised with the log-depth L1 "
                "(model.target_space=log_depth) instead of AbsRel",
                "procedural-supervised-log-depth-geometric": "that model on the geometric textures",
                **{
                    e.name: "held-out scenes, mixed textures (pink or posterised); both rows trained on the mixed "
                    "family" + seed_note(e)
                    for e in MIXED
                },
                **{f"{e.name}-pink": "those models on the held-out pink scenes" for e in MIXED},
                **{f"{e.name}-geometric": "those models on the geometric textures (never seen)" for e in MIXED},
                "procedural-long": "held-out pink scenes; the long budget",
                "procedural-long-geometric": "the long-budget models on the geometric textures (never seen)",
                "procedural-long-supervised-photometric": "held-out pink scenes; the long budget's supervised row "
                "with its photometric augmentation",
                "procedural-long-supervised-photometric-geometric": "that model on the geometric textures",
            },
            "protocol": "DFV (clip to [0, 1.5] m), one defocused image per sample, all 5 focus indices; "
            "near = GT < 1.5 m; constant = median of the clipped training GT; supervised = ground truth "
            "on every valid pixel with the AbsRel loss (model.supervised=true's default target_space)",
            **payload,
        },
    )


if __name__ == "__main__":
    main()
