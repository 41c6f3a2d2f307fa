"""Benchmark runner: the experiments of a plan file, each a ``sdgs fit`` / ``sdgs test`` run, into one JSON.

    python -m bench.train                      -> bench/train.json  (make bench-train, ~2.5 h)
    python -m bench.train --long               -> bench/train_long.json, docs/train_long.png
                                                  (make bench-train-long, ~60 min)
    python -m bench.train --plan lightning_configs/experiments/bench_quick.yaml --out bench/quick.json
                                               (make bench-quick: every headline row at reduced size)
    python -m bench.train --only procedural    reruns one experiment, keeps the others' entries
    FORCE=1 retrains finished rows.

The experiments, their seeds and test sets are declared in ``lightning_configs/experiments/*.yaml`` (format
in ``bench_train.yaml``'s header; :func:`load_plan` reads it); this module only runs them through
:mod:`sdgs.cli.report` (run folders under ``results/``, so ``make reproduce-table`` reuses them) and writes
per experiment: the reported metrics of each row, fit seconds, the quality bar (:func:`bar`) and, with
``seed_summary`` in the plan, supervised against self-supervised over training seeds (:func:`seed_summary`).

Quality bar, per test set: self-supervised AbsRel <= 0.75 x the constant's, near AbsRel <= 0.5 x the
constant's near AbsRel, delta1 >= the constant's - 5 points; supervised <= self-supervised (AbsRel, near
AbsRel); fit within the group's ``budget_s``. The constant is the training split's median depth as the DFV
protocol scores it (clipped at 1.5 m).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bench.common import write_json
from sdgs.cli.report import Experiment, load_experiments, run_table, write_table

QUICKSTART = "lightning_configs/quickstart.yaml"
EXPERIMENTS = Path("lightning_configs/experiments")
PLANS = {"train": EXPERIMENTS / "bench_train.yaml", "long": EXPERIMENTS / "bench_train_long.yaml"}
TABLE = "lightning_configs/table.yaml"
NETWORK_ROWS = ("self-supervised", "supervised")
ALL_ROWS = (*NETWORK_ROWS, "splatting stage", "depth from focus", "constant")


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


@dataclass
class Group:
    """Experiments run together: the rows each runs and the fit budget (s) of the quality bar (None: none)."""

    experiments: list[Experiment]
    rows: tuple[str, ...]
    budget_s: float | None
    optional: str | None = None


@dataclass
class Plan:
    """A plan file, expanded: groups in run order, each experiment's test-set text, the seed comparisons."""

    groups: list[Group]
    descriptions: dict[str, str]
    seed_groups: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    curves: str | None = None


def _expand(entry: dict, config: str, results: str, table: dict[str, Experiment]) -> list[tuple[Experiment, str]]:
    """One plan entry -> ``(experiment, description)`` pairs: the seeds first, then each seed's test sets."""
    if "table" in entry:
        return [(table[entry["table"]], entry["description"])]
    overrides = {
        k: v.format(results=results) if isinstance(v, str) else v for k, v in entry.get("overrides", {}).items()
    }
    trained = []
    for s in entry.get("seeds", [0]):
        exp = Experiment(
            name=seed_name(entry["name"], s),
            config=entry.get("config", config),
            overrides={**overrides, **({"seed_everything": s} if s else {})},
        )
        note = f", seed_everything={s}" if s else ""
        trained.append((exp, entry["description"].format(seed=s, seed_note=note)))
    tests = [
        (tested_on(exp, texture), text) for exp, _ in trained for texture, text in entry.get("tested_on", {}).items()
    ]
    return trained + tests


def load_plan(path: str | Path, results: str = "results", table_path: str | Path = TABLE) -> Plan:
    """Read a plan file of ``lightning_configs/experiments/`` (format: ``bench_train.yaml``'s header)."""
    spec = yaml.safe_load(Path(path).read_text())
    table = {e.name: e for e in load_experiments(table_path)}
    config = spec.get("config", QUICKSTART)
    groups, descriptions = [], {}
    for g in spec["groups"]:
        pairs = [pair for entry in g["experiments"] for pair in _expand(entry, config, results, table)]
        descriptions.update({e.name: text for e, text in pairs})
        groups.append(Group([e for e, _ in pairs], tuple(g["rows"]), g.get("budget_s"), g.get("optional")))
    names = [e.name for g in groups for e in g.experiments]
    if len(names) != len(set(names)):
        raise ValueError(f"{path}: experiment names repeat: {sorted(n for n in set(names) if names.count(n) > 1)}")
    return Plan(groups, descriptions, spec.get("seed_summary", {}), spec.get("curves"))


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


def seed_groups(plan: Plan | None = None) -> dict[str, dict[str, list[str]]]:
    """The comparisons of the seed summary (``seed_summary`` of ``bench_train.yaml`` unless ``plan``)."""
    return (plan or load_plan(PLANS["train"])).seed_groups


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", default=None, help=f"plan file (default {PLANS['train']}; --long: {PLANS['long']})")
    parser.add_argument("--out", default=None, help="default bench/train.json (--long: bench/train_long.json)")
    parser.add_argument("--results", default="results")
    parser.add_argument("--no-folder", action="store_true", help="skip the plan's optional 'folder' group")
    parser.add_argument("--long", action="store_true", help="the long budget (make bench-train-long, ~60 min)")
    parser.add_argument(
        "--only", nargs="+", metavar="EXPERIMENT",
        help="run only these experiments; the others' entries are kept from --out as they are (with the date "
        "and commit that produced them, under 'ran')",
    )  # fmt: skip
    args = parser.parse_args(argv)
    plan_path = Path(args.plan or PLANS["long" if args.long else "train"])
    out = Path(args.out or ("bench/train_long.json" if args.long else "bench/train.json"))
    plan = load_plan(plan_path, args.results)
    force = os.environ.get("FORCE") == "1"
    groups = [g for g in plan.groups if not (args.no_folder and g.optional == "folder")]
    # an experiment testing another's models has no fit of its own: no budget
    budgets = {e.name: None if e.trained_in else g.budget_s for g in groups for e in g.experiments}
    if args.only:
        exps = [e for g in groups for e in g.experiments]
        if unknown := sorted(set(args.only) - {e.name for e in exps}):
            raise SystemExit(f"--only: unknown experiment(s) {unknown}; this plan runs {sorted(e.name for e in exps)}")
        # an experiment that tests another's models reruns with it (its kept numbers would be stale)
        only = set(args.only) | {e.name for e in exps if e.trained_in in args.only}
        groups = [Group([e for e in g.experiments if e.name in only], g.rows, g.budget_s) for g in groups]
    table_dir = Path(args.results) / f"bench_{plan_path.stem.removeprefix('bench_')}"  # results/bench_train, ...
    table: dict = {}
    for g in groups:
        if g.experiments:
            table.update(run_table(g.experiments, args.results, force, g.rows))
    if args.only:
        print(f"--only: {table_dir}/table.md is left as it is (a full run writes it)")
    else:
        write_table(table, table_dir)
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
    if plan.seed_groups:
        payload["seed_summary"] = seed_summary(payload["rows"], plan.seed_groups)
    if plan.curves and plan.curves in table:
        rows = pick(table[plan.curves])
        folder = Path(args.results) / plan.curves
        curves = {row: curve(folder / row.replace(" ", "_")) for row in NETWORK_ROWS}
        splat_near = rows["splatting stage"]["near/abs_rel"]
        plot_curves(curves, splat_near, rows["constant"], Path("docs/train_long.png"))
        near = rows["self-supervised"]["near/abs_rel"]
        payload["curves"] = curves
        payload["aim"] = {
            "near_abs_rel_over_splatting_stage": round(near / splat_near, 3),
            "near abs_rel <= 1.5 x splatting stage": near <= 1.5 * splat_near,
        }
    elif plan.curves:
        payload.update({k: previous[k] for k in ("curves", "aim") if k in previous})
    descriptions = {}
    for path in sorted({plan_path, *PLANS.values()}):  # every plan's test sets, as the JSONs have always listed
        if Path(path).is_file():
            descriptions.update(load_plan(path, args.results).descriptions)
    write_json(
        out,
        {
            "config": f"{QUICKSTART} (procedural FoD500-like, 64 px, CPU); trained on the pink texture family; "
            f"experiments: {plan_path}",
            "test_sets": descriptions,
            "protocol": "DFV (clip to [0, 1.5] m), one defocused image per sample, all 5 focus indices; "
            "near = GT < 1.5 m; constant = median of the clipped training GT; supervised = ground truth "
            "on every valid pixel with the AbsRel loss (model.supervised=true's default target_space)",
            **payload,
        },
    )


if __name__ == "__main__":
    main()
