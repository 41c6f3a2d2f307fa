"""Research workflow: W&B sweep command lines, `sdgs predict` on photos, the results table writer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SWEEPS = sorted((REPO / "lightning_configs" / "sweeps").glob("*.yaml"))


def agent_argv(sweep: dict) -> list[str]:
    """The argv a W&B agent builds for the first point of the sweep: ${env} -> /usr/bin/env,
    ${args} -> --key=value per parameter (wandb/sdk/launch/sweeps/utils.py semantics)."""
    point = {}
    for key, spec in sweep["parameters"].items():
        if "values" in spec:
            point[key] = spec["values"][0]
        elif "value" in spec:
            point[key] = spec["value"]
        else:
            point[key] = spec["min"]
    argv = []
    for item in sweep["command"]:
        if item == "${env}":
            argv.append("/usr/bin/env")
        elif item == "${args}":
            argv += [f"--{k}={v}" for k, v in point.items()]
        elif item == "${program}":
            argv.append(sweep["program"])
        else:
            assert not item.startswith("${"), f"unsupported macro {item} (use ${{args}}, not ${{args_no_hyphens}})"
            argv.append(item)
    return argv


@pytest.mark.parametrize("path", SWEEPS, ids=[p.name for p in SWEEPS])
def test_sweep_definition_is_valid(path: Path) -> None:
    sweep = yaml.safe_load(path.read_text())
    assert sweep["metric"] == {"name": "val/abs_rel", "goal": "minimize"}
    assert "${args}" in sweep["command"] and "${args_no_hyphens}" not in sweep["command"]
    for value in (v for spec in sweep["parameters"].values() for v in spec.get("values", [])):
        if isinstance(value, str) and value.endswith(".yaml"):
            assert (REPO / value).is_file(), value


@pytest.mark.slow
@pytest.mark.parametrize("path", SWEEPS, ids=[p.name for p in SWEEPS])
def test_agent_command_line_trains(path: Path, tmp_path: Path) -> None:
    argv = agent_argv(yaml.safe_load(path.read_text()))
    argv = [(str(REPO / a) if a.endswith(".yaml") and not a.startswith("--") else a) for a in argv]
    argv = [a.replace("=lightning_configs/", f"={REPO}/lightning_configs/") for a in argv]
    small = ["--data.init_args.num_train=4", "--data.init_args.num_val=2", "--data.init_args.size=32",
             "--data.init_args.batch_size=2", "--trainer.max_steps=2", "--trainer.limit_val_batches=1",
             "--trainer.check_val_every_n_epoch=1", "--trainer.enable_progress_bar=false"]  # fmt: skip
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "PYTHONPATH": str(REPO),
        "WANDB_RUN_ID": "trial0",
    }  # fmt: skip  (the agent sets it for each trial)
    proc = subprocess.run(argv + small, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    # each trial has its own run folder
    assert (tmp_path / "runs" / "sweeps" / "trial0" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_predict_on_photos_writes_outputs_and_skips_bad_files(tmp_path: Path) -> None:
    import lightning as L

    from sdgs.lit import SDGSModule

    model = SDGSModule(sdnet_width=8, depthnet_width=8)
    trainer = L.Trainer(logger=False, enable_checkpointing=False, accelerator="cpu")
    trainer.strategy.connect(model)
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt)
    photos = tmp_path / "photos"
    photos.mkdir()
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((50, 70, 3)) * 255).astype(np.uint8)).save(photos / "a.jpg")
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "sdgs.cli", "predict", "--ckpt_path", str(ckpt), "--input", str(photos),
           "--focus-distance", "0.3", "--out", str(tmp_path / "out")]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]  # an image was skipped
    assert "predicted 1 of 2" in proc.stdout and "broken.png" in proc.stderr
    depth = np.load(tmp_path / "out" / "a_depth.npy")
    assert depth.shape == (50, 70) and np.isfinite(depth).all() and depth.min() > 0
    with Image.open(tmp_path / "out" / "a_depth.png") as im:
        assert im.mode.startswith("I") and np.asarray(im).max() == pytest.approx(depth.max() * 1000, abs=1)
    assert (tmp_path / "out" / "a_depth_vis.png").is_file() and (tmp_path / "out" / "a_preview.png").is_file()
    assert not list((tmp_path / "out").glob("broken*")) and not list((tmp_path / "out").glob(".*tmp*"))
    # a bad option is refused before the model loads, and nothing is written
    bad = subprocess.run(
        [*cmd[:-2], "--smooth-px", "-1", "--out", str(tmp_path / "out2")], env=env, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "--smooth-px must be >= 0" in bad.stderr and not (tmp_path / "out2").exists()


def test_table_writer_shows_needs_data_and_peers(tmp_path: Path) -> None:
    from sdgs.cli.report import write_table

    metrics = {"test/abs_rel": 0.2, "test/rmse": 0.3, "test/delta1": 60.0, "test/bumpiness": 1.0,
               "test/near/abs_rel": 0.25, "test/near/rmse": 0.2}  # fmt: skip
    table = {
        "procedural": {row: {"metrics": metrics} for row in ("self-supervised", "constant")},
        "fod500": {
            "needs": ["needs data: --data.init_args.data_dir (set SDGS_FOD500_DIR)"],
            "peers": [{"method": "AiFDepthNet (sup., focal stack)", "abs_rel": 0.1115, "protocol": "Table 5"}],
        },
    }
    path = write_table(table, tmp_path)
    text = path.read_text()
    assert "needs data: --data.init_args.data_dir" in text and "AiFDepthNet" in text
    assert "| **sdgs (ours, self-supervised)** | one defocused image | 0.200 | 0.300 | 60.00 | 0.250 | 0.200 |" in text
    assert json.loads((tmp_path / "table.json").read_text())["fod500"]["needs"]


def test_depth_from_focus_baseline_picks_sharpest_slice() -> None:
    import torch

    from sdgs.baselines import depth_from_focus

    sharp = torch.rand(1, 3, 16, 16)
    blurry = torch.full_like(sharp, 0.5)
    stack = torch.stack([blurry, sharp, blurry], 1)
    focus = torch.tensor([[0.1, 0.7, 1.5]])
    assert torch.all(depth_from_focus(stack, focus)[..., 4:-4, 4:-4] == 0.7)
