"""The ``fod500.yaml`` geometry on procedural data, on one GPU: learning curve, images/s, table vs baselines.

    python -m bench.gpu_train --minutes 20                     -> bench/gpu_train.json, docs/gpu_train.png
                                                                  (make bench-gpu-train; needs CUDA)
    python -m bench.gpu_train --device cpu --tiny --out /tmp/gpu_train.json      (CPU dry run, ~2 minutes)
    python -m bench.gpu_train --plot-only                      (docs/gpu_train.png from bench/gpu_train.json)

The GPU run of ``lightning_configs/fod500.yaml``: its networks, losses, splatting-stage settings, batch 8
and 224-px crops, with its data swapped for the procedural generator at 256² px (FoD500 optics, ``pink``
textures), self-supervised, trained for ``--minutes`` of wall time (``trainer.max_time``; with no step bound
the learning rate stays constant instead of fod500.yaml's cosine schedule), validated on 16 held-out scenes
every epoch. Through :func:`sdgs.cli.report.run_table` (``sdgs fit`` / ``sdgs test``
subprocesses, run folders under ``--results``) it then tests the model on 32 held-out scenes of the training
family and on the same scenes with the ``geometric`` textures it never saw, beside the splatting stage
(whole stack), depth from focus and the constant, in the same run. Written: the rows, the validation curve
(step, wall seconds, AbsRel, near AbsRel, δ1; :func:`bench.train.curve`) and the training throughput
(:class:`bench.gpu_check.TrainThroughput`: samples/s over the steps after the first epoch, whose steps hold
the splatting fits).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import yaml

from bench.common import write_json
from bench.train import ALL_ROWS, CURVE_KEYS, commit, curve, on_geometric, pick

REPO = Path(__file__).resolve().parents[1]
FOD500_YAML = REPO / "lightning_configs" / "fod500.yaml"
NAME = "gpu-fod500-procedural"
ROWS = tuple(r for r in ALL_ROWS if r != "supervised")  # the GPU minutes go to the self-supervised curve
#: data of the full run (GPU) and of the CPU dry run: same code path, smaller numbers
SIZES = {
    "full": {"size": 256, "crop_size": 224, "batch_size": 8, "num_train": 512, "num_val": 16, "num_test": 32},
    "tiny": {"size": 32, "crop_size": 24, "batch_size": 2, "num_train": 8, "num_val": 2, "num_test": 2},
}


def scene_count(seconds_per_scene: float, budget_s: float, share: float, batch: int, most: int) -> int:
    """Training scenes whose splatting fits take about ``share`` of the training budget (the first epoch's
    steps fit them): a whole number of batches, at least 8 batches, at most ``most``."""
    n = int(share * budget_s / max(seconds_per_scene, 1e-6)) // batch * batch
    return min(most, max(8 * batch, n))


def experiment_config(results: Path, data: dict) -> Path:
    """``fod500.yaml`` with its ``data`` replaced by the procedural generator (in memory, no files)."""
    cfg = yaml.safe_load(FOD500_YAML.read_text())
    cfg["data"] = {
        "class_path": "datamodules.SyntheticDataModule",
        # no loader workers: each worker would keep its own copy of the generated scenes
        "init_args": {**data, "num_workers": 0, "pin_memory": False},
    }
    cfg["trainer"].update({"max_epochs": -1, "default_root_dir": str(results / NAME)})
    path = results / f"{NAME}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# written by bench/gpu_train.py: {FOD500_YAML.relative_to(REPO)} on procedural scenes\n"
        + yaml.safe_dump(cfg, sort_keys=False)
    )
    return path


def max_time(minutes: float) -> str:
    """``trainer.max_time`` as Lightning's ``DD:HH:MM:SS``."""
    s = max(1, round(minutes * 60))
    return f"00:{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def plot(payload: dict, out: Path) -> None:
    """Validation AbsRel, near AbsRel and δ1 against training wall minutes, with the test rows as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = payload["rows"][NAME]
    points = [p for p in payload["curve"] if "time/fit_seconds" in p]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, key, title in zip(axes, CURVE_KEYS[1:], ("AbsRel", "near AbsRel (GT < 1.5 m)", "δ1 (%)"), strict=True):
        ax.plot([p["time/fit_seconds"] / 60 for p in points], [p[key] for p in points], marker=".", label="val")
        metric = key.removeprefix("val/")
        for row, style in (("constant", "--"), ("splatting stage", ":"), ("depth from focus", "-.")):
            ax.axhline(rows[row][metric], color="grey", ls=style, label=f"{row} (test)")
        ax.set_xlabel(f"training wall minutes ({payload['train'].get('device', '?')})")
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"fod500.yaml on procedural 256² scenes: validation curve ({payload['gpu_minutes']} min budget)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0, help="training wall minutes (trainer.max_time)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--tiny", action="store_true", help="toy sizes (CPU dry run)")
    parser.add_argument("--fit-share", type=float, default=0.3, help="budget share for the training scenes' fits")
    parser.add_argument("--backend", choices=("auto", "torch", "gsplat"), default="auto", help="renderer backend")
    parser.add_argument("--results", default="results", help="run folders go to RESULTS/gpu-fod500-procedural*")
    parser.add_argument("--out", default="bench/gpu_train.json")
    parser.add_argument("--figure", default=None, help="default docs/gpu_train.png (CPU runs: beside --out)")
    parser.add_argument("--commit", default=None, help="commit to record (default: git's; no .git on a copy)")
    parser.add_argument("--plot-only", action="store_true", help="redraw --figure from --out, train nothing")
    args = parser.parse_args(argv)
    default_figure = "docs/gpu_train.png" if args.device == "cuda" else Path(args.out).with_suffix(".png")
    figure = Path(args.figure or default_figure)
    if args.plot_only:
        plot(json.loads(Path(args.out).read_text()), figure)
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no CUDA GPU (CPU dry run: --device cpu --tiny --out /tmp/x.json)")
    if args.device == "cpu" and Path(args.out).resolve() == (REPO / "bench" / "gpu_train.json"):
        parser.error("bench/gpu_train.json holds GPU figures only; give a CPU run another --out")
    from bench.gpu_check import fit_speed
    from sdgs.cli.report import Experiment, run_table

    results = Path(args.results).resolve()
    sizes = dict(SIZES["tiny" if args.tiny else "full"])
    # the splatting fits of the training scenes run inside the first epoch's steps: size the training set so
    # that they take about --fit-share of the budget on this machine
    probe = fit_speed(args.device, 2 * sizes["batch_size"], sizes["size"], args.backend)
    sizes["num_train"] = scene_count(
        probe["seconds_per_scene"], 60 * args.minutes, args.fit_share, sizes["batch_size"], sizes["num_train"]
    )
    print(f"[gpu-train] splatting fits: {probe['seconds_per_scene']} s/scene -> {sizes['num_train']} training scenes")
    config = experiment_config(results, sizes)
    throughput = results / NAME / "self-supervised" / "throughput.json"
    overrides = {
        "trainer.max_time": max_time(args.minutes),
        "trainer.accelerator": "gpu" if args.device == "cuda" else "cpu",
        "splat.backend": args.backend,
        "trainer.callbacks+": "bench.gpu_check.TrainThroughput",
        "trainer.callbacks.init_args.out": str(throughput),
        # the first epoch's steps hold the splatting fits of its scenes
        "trainer.callbacks.init_args.warmup": sizes["num_train"] // sizes["batch_size"],
    }
    train = Experiment(name=NAME, config=str(config), overrides=overrides)
    geometric = on_geometric(train)
    table = run_table([train, geometric], results, force=True, rows=ROWS)
    payload = {
        "config": f"{FOD500_YAML.relative_to(REPO)} with data = procedural scenes ({sizes}), pink textures; "
        f"self-supervised; trainer.max_time {max_time(args.minutes)} at a constant learning rate; renderer backend "
        f"{args.backend}",
        "commit": args.commit or commit(),
        "gpu_minutes": args.minutes,
        "tiny": args.tiny,
        "test_sets": {
            NAME: f"{sizes['num_test']} held-out procedural scenes (test seeds), pink textures (the training family)",
            f"{NAME}-geometric": "the same scenes with the geometric textures (never seen in training)",
        },
        "protocol": "DFV (clip to [0, 1.5] m), one defocused image per sample, all 5 focus indices; "
        "near = GT < 1.5 m; constant = median of the clipped training GT",
        "rows": {name: pick(rows) for name, rows in table.items()},
        "fit_seconds": table[NAME]["self-supervised"].get("fit_seconds"),
        "splat_fit_probe": probe,
        "train": json.loads(throughput.read_text()),
    }
    try:
        payload["curve"] = curve(results / NAME / "self-supervised")
    except FileNotFoundError as err:  # the budget ended inside the first epoch: say so, keep the rest
        payload["curve"], payload["curve_error"] = [], str(err)
    write_json(args.out, payload)
    plot(payload, figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
