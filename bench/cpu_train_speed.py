"""CPU training speed before/after a change, in one run: the quickstart config on both source trees.

    python -m bench.cpu_train_speed --out bench/cpu_train_speed.json          (before = merge-base with main)
    python -m bench.cpu_train_speed --before <rev> --steps 40 --repeats 2

The "before" tree is ``git archive`` of ``--before`` (default: the merge-base of HEAD and ``main``, i.e. the
code this branch started from) unpacked into a scratch folder; the "after" tree is this working tree. Each
run is a fresh process (``PYTHONPATH`` = that tree) that builds ``lightning_configs/quickstart.yaml`` of its
own tree through ``sdgs.lit.cli.make_cli`` on the CPU, with 64 training scenes (4 steps per epoch), no
validation, the CSV logger only, its own empty splatting cache, and trains ``--warmup`` + ``--steps`` steps. The
warm-up holds the first epoch, whose batches fit the splatting stage of their scenes; the timed steps hold
none. Figures: steps/s over the training steps alone (batch start to batch end, the module's work plus the
splatting stage's per-batch lookup) and over the wall time (adds data loading and the epoch ends). Runs
alternate before/after ``--repeats`` times and each tree keeps its best run (a shared machine only slows a
run down). Set ``OMP_NUM_THREADS`` and nice the command on a shared machine: both trees see the same.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Training scenes of the timed runs: 4 batches of the quickstart's 16 per epoch.
NUM_TRAIN = 64


def _child(args: argparse.Namespace) -> None:
    """One timed run in this process; ``sdgs`` is whichever tree ``PYTHONPATH`` names."""
    import lightning as L
    import torch
    from sdgs.lit.cli import make_cli

    import sdgs

    class Timer(L.Callback):
        def __init__(self, warmup: int) -> None:
            self.warmup, self.step_s, self.steps = warmup, 0.0, 0
            self.t_batch: float | None = None
            self.t0: float | None = None

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if trainer.global_step >= self.warmup:
                self.t_batch = time.perf_counter()
                self.t0 = self.t0 or self.t_batch

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if self.t_batch is not None:
                self.step_s += time.perf_counter() - self.t_batch
                self.steps += 1
                self.t_batch = None

    tree = Path(sdgs.__file__).resolve().parents[1]
    scratch = Path(args.scratch)
    argv = [
        "--config", str(tree / "lightning_configs" / "quickstart.yaml"),
        # the CSV logger alone (the base's W&B logger would start a service; the LR monitor needs a logger)
        "--config", str(tree / "lightning_configs" / "logger" / "csv.yaml"),
        "--trainer.accelerator=cpu", "--trainer.devices=1",
        f"--trainer.default_root_dir={scratch / 'run'}", "--trainer.enable_progress_bar=false",
        f"--trainer.max_steps={args.warmup + args.steps}", "--trainer.max_epochs=-1",
        "--trainer.limit_val_batches=0", f"--data.init_args.num_train={NUM_TRAIN}",
        f"--splat.cache_dir={scratch / 'cache'}",
    ]  # fmt: skip
    cli = make_cli(argv, run=False)
    timer = Timer(args.warmup)
    cli.trainer.callbacks.append(timer)
    t_fit = time.perf_counter()
    cli.trainer.fit(cli.model, cli.datamodule)
    t_end = time.perf_counter()
    result = {
        "tree": str(tree),
        "steps_timed": timer.steps,
        "steps_per_s": round(timer.steps / timer.step_s, 3),
        "wall_steps_per_s": round(timer.steps / (t_end - timer.t0), 3),
        "seconds_to_warmup_end": round(timer.t0 - t_fit, 2),
        "torch_threads": torch.get_num_threads(),
    }
    Path(args.child_out).write_text(json.dumps(result))


def _tree_at(rev: str, dest: Path) -> str:
    """Unpack ``rev`` of this repository into ``dest``; returns its full commit id."""
    commit = subprocess.run(["git", "rev-parse", rev], cwd=REPO, check=True, capture_output=True, text=True)
    archive = dest.parent / "before.tar"
    with archive.open("wb") as fh:
        subprocess.run(["git", "archive", commit.stdout.strip()], cwd=REPO, check=True, stdout=fh)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    return commit.stdout.strip()


def _run(tree: Path, steps: int, warmup: int, scratch: Path) -> dict:
    out = scratch / "result.json"
    env = {**os.environ, "PYTHONPATH": str(tree), "WANDB_MODE": "disabled"}
    # run this file by path but without its folder on sys.path (bench/data.py, bench/train.py ... must not
    # shadow top-level modules), so `import sdgs` finds the tree on PYTHONPATH only
    launcher = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    cmd = [sys.executable, "-c", launcher, str(Path(__file__).resolve()), "--child", "--steps", str(steps),
           "--warmup", str(warmup), "--scratch", str(scratch), "--child-out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"run in {tree} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO / "bench" / "cpu_train_speed.json"))
    parser.add_argument("--before", default=None, help="git revision of the 'before' tree (default: merge-base)")
    parser.add_argument("--steps", type=int, default=40, help="timed training steps per run")
    parser.add_argument("--warmup", type=int, default=8, help="untimed steps first (the splatting fits)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per tree, alternating; the best is kept")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return 0
    before_rev = args.before
    if before_rev is None:
        base = subprocess.run(["git", "merge-base", "HEAD", "main"], cwd=REPO, capture_output=True, text=True)
        before_rev = base.stdout.strip() or "HEAD"
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
    after_commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sdgs_cpu_speed_") as tmp:
        before_tree = Path(tmp) / "before"
        before_commit = _tree_at(before_rev, before_tree)
        for i in range(args.repeats):
            for name, tree in (("before", before_tree), ("after", REPO)):
                scratch = Path(tmp) / f"{name}{i}"
                scratch.mkdir()
                runs[name].append(_run(tree, args.steps, args.warmup, scratch))
                print(f"[cpu-train-speed] {name} run {i}: {runs[name][-1]}", flush=True)
    best = {name: max(rs, key=lambda r: r["steps_per_s"]) for name, rs in runs.items()}
    payload = {
        "config": "lightning_configs/quickstart.yaml", "num_train": NUM_TRAIN, "steps_timed": args.steps,
        "warmup_steps": args.warmup, "repeats": args.repeats,
        "before": {"commit": before_commit, "best": best["before"],
                   "steps_per_s_all": [r["steps_per_s"] for r in runs["before"]]},
        "after": {"commit": after_commit.stdout.strip(), "uncommitted_changes": bool(dirty.strip()),
                  "best": best["after"], "steps_per_s_all": [r["steps_per_s"] for r in runs["after"]]},
        "after_over_before_steps_per_s": round(best["after"]["steps_per_s"] / best["before"]["steps_per_s"], 3),
        "after_over_before_wall_steps_per_s": round(
            best["after"]["wall_steps_per_s"] / best["before"]["wall_steps_per_s"], 3),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "cpus": os.cpu_count(),
        "total_s": round(time.perf_counter() - t0, 1),
    }  # fmt: skip
    Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
