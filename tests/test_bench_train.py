"""bench.train's bookkeeping: learning curves from a run folder's CSV logs, and the quality bar."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bench.train import bar, curve, seed_groups, seed_summary

HEADER = ["epoch", "step", "time/fit_seconds", "val/abs_rel", "val/near/abs_rel", "val/delta1", "train/loss"]


def _log(folder: Path, version: int, rows: list[dict]) -> None:
    path = folder / "logs" / f"version_{version}" / "metrics.csv"
    path.parent.mkdir(parents=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, HEADER + ["test/abs_rel"])
        writer.writeheader()
        writer.writerows(rows)


def _val(step: int, seconds: float, abs_rel: float) -> dict:
    return {"step": step, "time/fit_seconds": seconds, "val/abs_rel": abs_rel, "val/near/abs_rel": abs_rel,
            "val/delta1": 50.0}  # fmt: skip


def test_curve_joins_a_resumed_fit_and_ignores_the_test_run(tmp_path: Path) -> None:
    _log(tmp_path, 0, [{"step": 5, "train/loss": 1.0}, _val(9, 10.0, 0.9), _val(19, 20.0, 0.8)])
    # a resume from the step-9 checkpoint: its clock restarts, step 19 is repeated
    _log(tmp_path, 1, [_val(19, 12.0, 0.7), _val(29, 25.0, 0.6)])
    _log(tmp_path, 2, [{"step": 29, "test/abs_rel": 0.5}])  # sdgs test in the same run folder
    points = curve(tmp_path)
    assert [p["step"] for p in points] == [9, 19, 29]
    assert [p["val/abs_rel"] for p in points] == [0.9, 0.7, 0.6]  # the repeated step keeps the resumed value
    assert [p["time/fit_seconds"] for p in points] == [10.0, 32.0, 45.0]  # offset by the first part's 20 s


def test_curve_without_validation_rows_says_so(tmp_path: Path) -> None:
    _log(tmp_path, 0, [{"step": 29, "test/abs_rel": 0.5}])
    with pytest.raises(FileNotFoundError, match="no validation rows"):
        curve(tmp_path)


def test_bar_ratios_and_targets() -> None:
    row = lambda a, n, d: {"metrics": {"test/abs_rel": a, "test/near/abs_rel": n, "test/delta1": d}}  # noqa: E731
    rows = {"self-supervised": {**row(0.5, 0.4, 20.0), "fit_seconds": 300.0}, "supervised": row(0.6, 0.3, 30.0),
            "constant": row(1.0, 1.0, 22.0)}  # fmt: skip
    out = bar(rows, budget_s=600.0)
    assert out["abs_rel_over_constant"] == 0.5 and out["near_abs_rel_over_constant"] == 0.4
    assert out["delta1_minus_constant"] == -2.0
    assert out["targets"] == {
        "abs_rel <= 0.75 x constant": True,
        "near abs_rel <= 0.5 x constant": True,
        "delta1 >= constant - 5": True,
        "supervised <= self-supervised (abs_rel)": False,
        "supervised <= self-supervised (near/abs_rel)": True,
        "fit <= 600 s": True,
    }


def test_seed_summary_counts_seeds_and_compares_means() -> None:
    r = lambda a, n, d, e: {"abs_rel": a, "near/abs_rel": n, "delta1": d, "rmse": e}  # noqa: E731
    rows = {
        "s0": {"self-supervised": r(0.5, 0.5, 20.0, 0.5), "supervised": r(0.4, 0.6, 22.0, 0.4)},
        "s1": {"self-supervised": r(0.5, 0.5, 20.0, 0.5), "supervised": r(0.45, 0.42, 19.0, 0.5)},
        "g0": {"self-supervised": r(0.5, 0.5, 20.0, 0.5)},  # no supervised row: the family is left out
    }
    both = lambda names: {"self-supervised": names, "supervised": names}  # noqa: E731
    out = seed_summary(rows, {"pink": both(["s0", "s1"]), "geometric": both(["g0"])})
    assert list(out) == ["pink"]
    near, d1 = out["pink"]["near/abs_rel"], out["pink"]["delta1"]
    assert near["supervised"] == {"seeds": [0.6, 0.42], "mean": 0.51}
    assert near["supervised_at_least_as_good"] == {"seeds": 1, "of": 2, "on_the_mean": False}
    assert d1["supervised_at_least_as_good"] == {"seeds": 1, "of": 2, "on_the_mean": True}  # higher is better
    assert out["pink"]["rmse"]["supervised_at_least_as_good"] == {"seeds": 2, "of": 2, "on_the_mean": True}


def test_seed_groups_pair_each_family_and_variant() -> None:
    groups = seed_groups()
    assert groups["geometric"]["supervised"] == [
        "procedural-geometric", "procedural-seed-1-geometric", "procedural-seed-2-geometric"
    ]  # fmt: skip
    variant = groups["pink, supervised with photometric"]
    assert (
        variant["self-supervised"][0] == "procedural"
        and variant["supervised"][2] == "procedural-supervised-photometric-seed-2"
    )


PLANS = sorted((Path(__file__).resolve().parents[1] / "lightning_configs" / "experiments").glob("*.yaml"))


def test_plan_expands_seeds_and_test_sets(tmp_path: Path) -> None:
    from bench.train import load_plan

    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(
        "config: lightning_configs/quickstart.yaml\n"
        "groups:\n"
        "  - rows: [self-supervised, constant]\n"
        "    budget_s: 60\n"
        "    experiments:\n"
        "      - name: x\n"
        "        seeds: [0, 2]\n"
        "        description: 'x{seed_note}'\n"
        "        overrides: {model.lr: 0.1, data.init_args.data_dir: '{results}/x'}\n"
        "        tested_on: {geometric: 'x on geometric'}\n"
    )
    plan = load_plan(plan_file, results="R")
    (group,) = plan.groups
    assert [e.name for e in group.experiments] == ["x", "x-seed-2", "x-geometric", "x-seed-2-geometric"]
    assert group.experiments[1].overrides == {"model.lr": 0.1, "data.init_args.data_dir": "R/x", "seed_everything": 2}
    assert group.experiments[3].trained_in == "x-seed-2"
    assert group.experiments[3].overrides["data.init_args.texture"] == "geometric"
    assert plan.descriptions["x-seed-2"] == "x, seed_everything=2" and plan.descriptions["x"] == "x"
    assert group.rows == ("self-supervised", "constant") and group.budget_s == 60


@pytest.mark.parametrize("plan_file", PLANS, ids=lambda p: p.stem)
def test_every_planned_experiment_parses_through_the_cli(plan_file: Path) -> None:
    """Each experiment's config + overrides is a valid ``sdgs fit`` configuration; seed comparisons name
    experiments of the plan with both network rows."""
    from bench.train import load_plan
    from sdgs.cli.lightning import parse_config

    plan = load_plan(plan_file)
    experiments = {e.name: e for g in plan.groups for e in g.experiments}
    assert set(plan.descriptions) == set(experiments) and all(plan.descriptions.values())
    seen = set()
    for exp in experiments.values():
        options = tuple(f"--{k}={v}" for k, v in exp.overrides.items())
        if (exp.config, options) in seen:
            continue
        seen.add((exp.config, options))
        cfg = parse_config(["--config", exp.config, *options])
        for key, value in exp.overrides.items():
            node = cfg
            for part in key.split("."):
                node = node[part]
            assert str(node).lower() in (str(value).lower(), "none" if value == "null" else "-"), key
    for comparison, rows in plan.seed_groups.items():
        assert all(name in experiments for names in rows.values() for name in names), comparison
