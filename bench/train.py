"""Quickstart quality bar: single-image depth against the constant and no-learning baselines, in one run.

    python -m bench.train --out bench/quickstart.json      (FORCE=1 retrains; make bench-train)

Runs, through :mod:`sdgs.report` (``sdgs fit`` / ``sdgs test`` subprocesses, run folders under ``results/``,
so ``make reproduce-table`` reuses them):

* ``procedural``: the quickstart config as a user runs it (``pink`` textures): self-supervised, supervised
  (same networks, budget and loss, ground truth), splatting stage, depth from focus, constant;
* ``procedural-geometric``: the same two models, not retrained, on the same held-out scenes rendered with the
  ``geometric`` texture family they never saw (the cross-generator check of issue 10);
* ``procedural-before-issue-10``: the quickstart with the settings before issue 10 (CoC-space loss weighted by
  the splatting confidence, no blur inputs), self-supervised: the before/after comparison at one budget;
* ``procedural-no-confidence`` (and ``-geometric``): the default without the splatting confidence weighting
  the self-supervised terms, on both families;
* ``fod500-folder-144``: ``sdgs fit`` on a FoD500-format folder of 144 training stacks at 64 px (written by
  the procedural generator, read through the FoD500 loader), self-supervised, 56 epochs.

Bar (issue 10), per test set: self-supervised AbsRel <= 0.75 x the constant's, near AbsRel <= 0.5 x the
constant's near AbsRel, delta1 >= the constant's - 5 points; supervised <= self-supervised (AbsRel, near
AbsRel); fit <= 10 minutes (quickstart) / 15 minutes (144 stacks). The constant is the training split's
median depth as the DFV protocol scores it (clipped at 1.5 m).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench.common import write_json
from sdgs.report import Experiment, load_experiments, run_table, write_table

QUICKSTART = "lightning_configs/quickstart.yaml"


def folder_144(results: str) -> Experiment:
    """The within-generator check on files: a FoD500-format folder of 144 stacks (issue 10, part 3)."""
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


#: the same budget and data with the settings before issue 10 (CoC-space L1 weighted by the splatting
#: confidence, no blur inputs): the "before" row of the before/after comparison
BEFORE = Experiment(
    name="procedural-before-issue-10",
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
NO_CONFIDENCE_GEOMETRIC = Experiment(
    name="procedural-no-confidence-geometric",
    config=QUICKSTART,
    trained_in="procedural-no-confidence",
    overrides={"model.use_confidence": False, "data.init_args.texture": "geometric"},
)
NETWORK_ROWS = ("self-supervised", "supervised")
ALL_ROWS = (*NETWORK_ROWS, "splatting stage", "depth from focus", "constant")


def bar(rows: dict, budget_s: float | None) -> dict:
    """The issue's ratios and booleans for one test set (``rows``: run_table's rows of one experiment)."""
    m = lambda row, key: rows[row]["metrics"][f"test/{key}"]  # noqa: E731
    ss, const = "self-supervised", "constant"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="bench/quickstart.json")
    parser.add_argument("--results", default="results")
    parser.add_argument("--no-folder", action="store_true", help="skip the 144-stack FoD500-folder check")
    args = parser.parse_args()
    table_exps = {e.name: e for e in load_experiments("lightning_configs/table.yaml")}
    force = os.environ.get("FORCE") == "1"
    table = run_table([table_exps["procedural"], table_exps["procedural-geometric"]], args.results, force, ALL_ROWS)
    budgets = {"procedural": 600.0, "procedural-geometric": None, "procedural-before-issue-10": 600.0}
    table.update(
        run_table(
            [BEFORE, NO_CONFIDENCE, NO_CONFIDENCE_GEOMETRIC], args.results, force, ("self-supervised", "constant")
        )
    )
    budgets.update({"procedural-no-confidence": 600.0, "procedural-no-confidence-geometric": None})
    if not args.no_folder:
        rows = ("self-supervised", "splatting stage", "depth from focus", "constant")
        table.update(run_table([folder_144(args.results)], args.results, force, rows))
        budgets["fod500-folder-144"] = 900.0
    write_table(table, Path(args.results) / "bench_train")  # not results/table.*: that is reproduce-table's
    pick = lambda rows: {  # noqa: E731
        row: {k.removeprefix("test/"): round(v, 4) for k, v in rows[row]["metrics"].items()
              if k.removeprefix("test/") in ("abs_rel", "rmse", "delta1", "near/abs_rel")}
        for row in ALL_ROWS if row in rows
    }  # fmt: skip
    write_json(
        args.out,
        {
            "config": f"{QUICKSTART} (procedural FoD500-like, 64 px, CPU); trained on the pink texture family",
            "test_sets": {
                "procedural": "held-out procedural scenes (test seeds), pink textures (the training family)",
                "procedural-geometric": "the same held-out scenes, geometric textures (never seen in training)",
                "procedural-before-issue-10": "held-out procedural scenes (pink); the settings before issue 10",
                "procedural-no-confidence": "held-out pink scenes; the default with model.use_confidence=false",
                "procedural-no-confidence-geometric": "the same model on the geometric textures",
                "fod500-folder-144": "held-out procedural scenes; trained on a FoD500-format folder of 144 stacks",
            },
            "protocol": "DFV (clip to [0, 1.5] m), one defocused image per sample, all 5 focus indices; "
            "near = GT < 1.5 m; constant = median of the clipped training GT",
            "rows": {name: pick(rows) for name, rows in table.items()},
            "fit_seconds": {
                name: {r: rows[r].get("fit_seconds") for r in NETWORK_ROWS if r in rows} for name, rows in table.items()
            },
            "bar": {name: bar(rows, budgets[name]) for name, rows in table.items()},
        },
    )


if __name__ == "__main__":
    main()
