"""Quickstart quality bar: self-supervised vs supervised (same architecture and budget) vs constant.

    python -m bench.train --out bench/quickstart.json      (FORCE=1 retrains)

Runs the procedural experiment of ``lightning_configs/table.yaml`` through :mod:`sdgs.report` (so
``make reproduce-table`` reuses the same runs) and records wall times and held-out test metrics.
"""

from __future__ import annotations

import argparse
import os

from bench.common import write_json
from sdgs.report import load_experiments, run_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="bench/quickstart.json")
    parser.add_argument("--results", default="results")
    args = parser.parse_args()
    exp = [e for e in load_experiments("lightning_configs/table.yaml") if e.name == "procedural"]
    table = run_table(exp, args.results, force=os.environ.get("FORCE") == "1",
                      rows=("self-supervised", "supervised", "constant"))["procedural"]  # fmt: skip
    pick = lambda row, key: table[row]["metrics"].get(key)  # noqa: E731
    summary = {}
    for scope in ("", "near/"):
        key = f"test/{scope}abs_rel"
        ss, sup, const = pick("self-supervised", key), pick("supervised", key), pick("constant", key)
        summary[f"abs_rel_{scope or 'all/'}".rstrip("/")] = {
            "self_supervised": round(ss, 4), "supervised": round(sup, 4), "constant": round(const, 4),
            "self_over_supervised": round(ss / sup, 3), "self_over_constant": round(ss / const, 3),
        }  # fmt: skip
    write_json(
        args.out,
        {
            "config": "lightning_configs/quickstart.yaml (procedural FoD500-like, 64 px, CPU)",
            "test_set": "held-out procedural scenes (test seeds), one defocused image per sample, all 5 focus indices",
            "protocol": "DFV (clip to [0, 1.5] m); near = GT < 1.5 m",
            "summary": summary,
            "fit_seconds": {r: table[r].get("fit_seconds") for r in ("self-supervised", "supervised")},
            "targets": {
                "self_over_supervised <= 1.25 (all)": summary["abs_rel_all"]["self_over_supervised"] <= 1.25,
                "self_over_supervised <= 1.25 (near)": summary["abs_rel_near"]["self_over_supervised"] <= 1.25,
                "self_over_constant < 1 (all)": summary["abs_rel_all"]["self_over_constant"] < 1,
            },
        },
    )


if __name__ == "__main__":
    main()
