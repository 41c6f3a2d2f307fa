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
