"""``make bench-gpu-train`` (bench/gpu_train.py): its sizing helpers, and a CPU dry run of the whole bench."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench import gpu_train

REPO = Path(__file__).resolve().parents[1]


def test_scene_count_sizes_the_fits_to_a_share_of_the_budget() -> None:
    # 0.35 s a scene, 3 minutes, 30 %: 154 scenes -> 152, a whole number of batches of 8
    assert gpu_train.scene_count(0.35, 180, 0.3, 8, 512) == 152
    assert gpu_train.scene_count(10.0, 60, 0.3, 8, 512) == 64  # at least 8 batches
    assert gpu_train.scene_count(0.001, 1200, 0.3, 8, 512) == 512  # at most the configured count


def test_max_time_is_lightnings_format() -> None:
    assert gpu_train.max_time(3) == "00:00:03:00"
    assert gpu_train.max_time(20.5) == "00:00:20:30"
    assert gpu_train.max_time(90) == "00:01:30:00"


def test_experiment_config_is_fod500_with_procedural_data(tmp_path: Path) -> None:
    path = gpu_train.experiment_config(tmp_path, gpu_train.SIZES["full"])
    cfg = yaml.safe_load(path.read_text())
    fod500 = yaml.safe_load(gpu_train.FOD500_YAML.read_text())
    assert cfg["model"] == fod500["model"] and cfg["splat"] == fod500["splat"]
    assert cfg["data"]["class_path"] == "datamodules.SyntheticDataModule"
    assert cfg["data"]["init_args"]["size"] == 256 and cfg["data"]["init_args"]["crop_size"] == 224
    assert cfg["trainer"]["max_epochs"] == -1 and cfg["trainer"]["default_root_dir"] == str(tmp_path / gpu_train.NAME)


def test_gpu_json_is_refused_for_cpu_figures(capsys) -> None:
    with pytest.raises(SystemExit):
        gpu_train.main(["--device", "cpu", "--tiny", "--out", str(REPO / "bench" / "gpu_train.json")])
    assert "GPU figures only" in capsys.readouterr().err


@pytest.mark.slow
def test_gpu_train_cpu_dry_run(tmp_path: Path) -> None:
    out = tmp_path / "gpu_train.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.gpu_train", "--device", "cpu", "--tiny", "--minutes", "0.2",
         "--backend", "torch", "--results", str(tmp_path / "results"), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "WANDB_MODE": "disabled"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(out.read_text())
    rows = result["rows"][gpu_train.NAME]
    assert set(rows) == set(gpu_train.ROWS)
    assert set(result["rows"][f"{gpu_train.NAME}-geometric"]) == set(gpu_train.ROWS)
    assert result["train"]["steps_timed"] > 0 and result["train"]["renderer_backend"] == "torch"
    assert result["curve"] and all("val/abs_rel" in p for p in result["curve"])
    assert out.with_suffix(".png").is_file()
