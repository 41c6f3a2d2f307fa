"""Every YAML under lightning_configs/ parses against the code (``--print_config``), so a config that no
longer matches a class signature fails here, and the base + delta layering does what the files say."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import yaml

from sdgs.cli import main
from sdgs.splatting import SplatFitConfig

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "lightning_configs"
EXPERIMENTS = ["quickstart.yaml", "fod500.yaml", "nyuv2.yaml", "dfd_indoor.yaml"]
#: deltas on top of dfd_indoor.yaml (``--config dfd_indoor.yaml --config <delta>``)
REAL_DELTAS = ["dfd_indoor_supervised.yaml", "dfd_indoor_no_defocus.yaml", "dfd_indoor_gpu.yaml"]
FRAGMENTS = sorted(
    str(p.relative_to(CONFIGS)) for p in CONFIGS.glob("*/*.yaml") if p.parent.name in ("trainer", "logger")
)
#: GPU variants: deltas layered on their experiment
GPU_VARIANTS = {"fod500_gpu.yaml": "fod500.yaml", "nyuv2_gpu.yaml": "nyuv2.yaml"}


def print_config(*args: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--print_config"])
    assert exit_info.value.code in (0, None), out.getvalue()
    return yaml.safe_load(out.getvalue())


def test_every_yaml_is_covered() -> None:
    listed = {"base.yaml", "table.yaml", *EXPERIMENTS, *REAL_DELTAS, *GPU_VARIANTS, *FRAGMENTS}
    listed |= {str(p.relative_to(CONFIGS)) for p in (CONFIGS / "sweeps").glob("*.yaml")}  # test_workflow.py
    listed |= {str(p.relative_to(CONFIGS)) for p in (CONFIGS / "experiments").glob("*.yaml")}  # test_bench_train.py
    assert {str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml")} == listed


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_is_base_plus_deltas(name: str) -> None:
    cfg = print_config("--config", str(CONFIGS / name))
    base = yaml.safe_load((CONFIGS / "base.yaml").read_text())
    delta = yaml.safe_load((CONFIGS / name).read_text())
    # the experiment file holds no trainer plumbing: loggers and callbacks come from the base; an experiment
    # may only append a callback of its own (`callbacks+`), never replace the base's
    assert "logger" not in delta["trainer"] and "callbacks" not in delta["trainer"]
    appended = delta["trainer"].get("callbacks+", [])
    assert [c["class_path"] for c in cfg["trainer"]["callbacks"]] == [
        c["class_path"] for c in base["trainer"]["callbacks"] + appended
    ]
    assert cfg["trainer"]["default_root_dir"] == delta["trainer"]["default_root_dir"] == f"runs/{name[:-5]}"
    assert cfg["splat"]["iters"] == delta.get("splat", {}).get("iters", SplatFitConfig().iters)
    assert cfg["model"]["sdnet_width"] == delta["model"]["sdnet_width"]
    # the run folder owns every output path (derived by the CLI, never fixed in a YAML)
    assert all(
        c["init_args"].get("dirpath") is None
        for c in base["trainer"]["callbacks"]
        if "dirpath" in c.get("init_args", {})
    )


@pytest.mark.parametrize("delta", REAL_DELTAS)
def test_real_photo_delta_parses_on_top_of_dfd_indoor(delta: str) -> None:
    cfg = print_config("--config", str(CONFIGS / "dfd_indoor.yaml"), "--config", str(CONFIGS / delta))
    change = yaml.safe_load((CONFIGS / delta).read_text())
    for key, value in change.get("model", {}).items():
        assert cfg["model"][key] == value, key
    for key, value in change.get("data", {}).get("init_args", {}).items():
        assert cfg["data"]["init_args"][key] == value, key
    assert cfg["trainer"]["default_root_dir"] == change["trainer"]["default_root_dir"]
    assert cfg["data"]["init_args"]["real_in_stack"] is True  # the rest is dfd_indoor.yaml's


@pytest.mark.parametrize(("variant", "experiment"), GPU_VARIANTS.items())
def test_gpu_variant_feeds_the_gpu_and_keeps_the_experiment(variant: str, experiment: str) -> None:
    plain = print_config("--config", str(CONFIGS / experiment))
    cfg = print_config("--config", str(CONFIGS / experiment), "--config", str(CONFIGS / variant))
    assert cfg["trainer"]["precision"] == "bf16-mixed"
    assert cfg["model"]["channels_last"] is True
    loader = cfg["data"]["init_args"]
    assert loader["num_workers"] > 0 and loader["pin_memory"] is True  # persistent: num_workers > 0
    assert loader["batch_size"] > plain["data"]["init_args"]["batch_size"]
    assert cfg["trainer"]["check_val_every_n_epoch"] is None and cfg["trainer"]["val_check_interval"] > 1
    assert cfg["splat"]["keep_on_device"] is True
    assert cfg["trainer"]["default_root_dir"] == f"runs/{variant[:-5]}"
    # the experiment itself (data, networks, splatting settings) is unchanged
    assert cfg["data"]["class_path"] == plain["data"]["class_path"]
    for key in ("sdnet_width", "sdnet_depth", "depthnet_width", "depthnet_depth", "metric_protocol"):
        assert cfg["model"][key] == plain["model"][key], key
    assert {k: v for k, v in cfg["splat"].items() if k != "keep_on_device"} == {
        k: v for k, v in plain["splat"].items() if k != "keep_on_device"
    }
    assert loader["crop_size"] == plain["data"]["init_args"]["crop_size"]


@pytest.mark.parametrize("fragment", FRAGMENTS)
def test_fragment_parses_on_top_of_the_quickstart(fragment: str) -> None:
    cfg = print_config("--config", str(CONFIGS / "quickstart.yaml"), "--config", str(CONFIGS / fragment))
    delta = yaml.safe_load((CONFIGS / fragment).read_text())
    for key, value in delta["trainer"].items():
        if key != "logger":
            assert cfg["trainer"][key] == value, key
    if "logger" in delta["trainer"]:
        assert [lg["class_path"] for lg in cfg["trainer"]["logger"]] == [
            lg["class_path"] for lg in delta["trainer"]["logger"]
        ]


def test_table_experiments_point_at_configs() -> None:
    from sdgs.cli.report import load_experiments

    experiments = load_experiments(CONFIGS / "table.yaml")
    assert [e.name for e in experiments] == ["procedural", "fod500", "nyuv2", "procedural-geometric"]
    for exp in experiments:
        print_config("--config", str(REPO / exp.config))
