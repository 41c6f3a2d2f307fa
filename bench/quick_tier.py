"""``make bench-quick``: every headline row at reduced size, each stage timed -> bench/quick_tier.json.

    python -m bench.quick_tier [--data_dir …/dfd_indoor]

Stages (each a command a user could type; this runner only times them):

1. the README's procedural rows at a quarter of the quickstart's budget (``bench.train`` with
   ``lightning_configs/experiments/bench_quick.yaml``) -> ``bench/quick.json``;
2. with the DFD-indoor data: the real-photo model, its supervised upper bound and the no-defocus control at a
   quarter of their steps (``bench.real.QUICK_RUNS``), then ``bench.real --quick`` scores them beside the real
   baselines -> ``bench/quick_real.json``.

``bench/quick_tier.json`` records every stage's command and wall time and the total against the tier's budget
(20 minutes on 2 CPU cores). Nothing is reused: ``bench.train`` refits (``FORCE=1``) and the real runs'
folders are replaced, so each run is the same budget from scratch (the stack and teacher caches are kept).
Without the data the real stages are skipped and listed as such.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import write_json
from bench.real import QUICK_RUNS, QUICK_STEPS

#: the tier's wall-time budget on 2 CPU cores (s)
BUDGET_S = 20 * 60


def stages(data_dir: str | None) -> list[tuple[str, list[str], str | None]]:
    """``(name, argv, run folder to replace or None)`` of each stage, in order."""
    py = sys.executable
    out = [
        (
            "procedural rows",
            [py, "-m", "bench.train", "--plan", "lightning_configs/experiments/bench_quick.yaml"]
            + ["--out", "bench/quick.json"],
            None,
        )
    ]
    if data_dir is None:
        return out
    for run, fragment in QUICK_RUNS.items():
        argv = [py, "-m", "sdgs.cli", "fit", "--config", "lightning_configs/dfd_indoor.yaml"]
        argv += ["--config", fragment] if fragment else []
        argv += ["--config", "lightning_configs/logger/csv.yaml", f"--data.init_args.data_dir={data_dir}"]
        argv += [f"--trainer.max_steps={QUICK_STEPS}", f"--trainer.val_check_interval={QUICK_STEPS}"]
        argv += [f"--trainer.default_root_dir={run}"]
        out.append((f"train {run}", argv, run))
    out.append(
        (
            "score the real rows",
            [py, "-m", "bench.real", "--quick", "--data_dir", data_dir, "--out", "bench/quick_real.json"],
            None,
        )
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default=os.environ.get("SDGS_DFD_INDOOR_DIR", "../shared/data/dfd_indoor"))
    parser.add_argument("--out", default="bench/quick_tier.json")
    args = parser.parse_args()
    data_dir = args.data_dir if Path(args.data_dir).is_dir() else None
    if data_dir is None:
        print(f"bench-quick: no DFD-indoor data at {args.data_dir} (SDGS_DFD_INDOOR_DIR): real-photo rows skipped")
    timed: dict[str, dict] = {}
    t0 = time.perf_counter()
    for name, argv, run in stages(data_dir):
        if run is not None:
            shutil.rmtree(run, ignore_errors=True)
        print(f"bench-quick: {name}: {shlex.join(argv)}", flush=True)
        t = time.perf_counter()
        subprocess.run(argv, check=True, env={**os.environ, "FORCE": "1"})  # bench.train: refit, never reuse
        timed[name] = {"command": shlex.join(argv), "seconds": round(time.perf_counter() - t, 1)}
    total = round(time.perf_counter() - t0, 1)
    write_json(
        args.out,
        {
            "stages": timed,
            "skipped": [] if data_dir else ["the real-photo rows: no DFD-indoor data"],
            "total_seconds": total,
            "budget_seconds": BUDGET_S,
            "within_budget": total <= BUDGET_S,
        },
    )


if __name__ == "__main__":
    main()
