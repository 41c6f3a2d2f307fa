"""``make gpu-check`` (bench/gpu_check.py) exercised on CPU: its parity section through the gsplat proxy,
every other section in the ``--tiny`` CPU dry run, and its refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench import gpu_check

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_gsplat_parity_section_on_cpu_proxy(gsplat_on_cpu) -> None:
    report = gpu_check.parity("cpu", tiny=True)
    assert gsplat_on_cpu["isect_tiles"] == 2 and gsplat_on_cpu["fully_fused_projection"] == 1
    assert report["pass"] is True
    for case, grads in (("rasterize_gaussians", 5), ("render_defocus", 3)):
        assert set(report[case]["forward"]) == {"image", "alpha", "depth"}
        assert len(report[case]["gradient"]) == grads
        for err in [*report[case]["forward"].values(), *report[case]["gradient"].values()]:
            assert 0 <= err["max_abs"] <= gpu_check.FWD_TOL and err["max_rel_to_scale"] <= gpu_check.GRAD_TOL


def test_gpu_check_triton_parity_section_on_cpu_interpreter() -> None:
    report = gpu_check.parity("cpu", tiny=True, backend="triton")
    assert report["backend"] == "triton" and report["pass"] is True, report
    for err in report["render_defocus"]["forward"].values():
        assert err["max_abs"] <= gpu_check.FWD_TOL


def test_util_sampler_summarises_nvml_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The NVML sampler's statistics, on a fake pynvml that replays known readings."""
    import types

    readings = iter([10, 90, 95, 85, 100] * 1000)
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda i: f"gpu{i}",
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=next(readings), memory=40),
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(gpu_check, "UTIL_PERIOD_S", 0.0)
    sampler = gpu_check.UtilSampler(0)
    for _ in range(10):  # what the thread does, without its timing
        sampler.samples.append(float(next(readings)))
        sampler.memory_samples.append(40.0)
    summary = sampler.summary()
    assert summary["reads"] == 10 and summary["sm_util_mean_pct"] == 76.0
    assert (
        summary["fraction_reads_at_least_80_pct"] == 0.8
        and summary["sm_util_p10_pct"] == 10.0
        and summary["sm_util_p50_pct"] == 90.0
    )
    assert summary["memory_util_mean_pct"] == 40.0
    with gpu_check.UtilSampler(0) as running:  # the thread itself starts, reads and stops
        while len(running.samples) < 3:
            pass
    assert running.summary()["reads"] >= 3
    assert "skipped" in gpu_check.UtilSampler(None).summary()


def test_gpu_check_parity_skips_without_the_gsplat_backend() -> None:
    assert "use backend='torch'" in gpu_check.parity("cpu")["skipped"]


def test_gpu_check_fit_settings_come_from_fod500_yaml() -> None:
    settings = gpu_check.stage_settings()
    assert settings["iters"] == 32 and settings["num_layers"] == 16


def test_gpu_check_refuses_cpu_figures_in_gpu_json_and_cuda_without_gpu(capsys) -> None:
    before = gpu_check.GPU_JSON.exists()
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.main(["--device", "cpu", "--tiny"])
    assert exit_info.value.code == 2 and "holds GPU figures only" in capsys.readouterr().err
    assert gpu_check.GPU_JSON.exists() == before
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit) as exit_info:
            gpu_check.main(["--device", "cuda"])
        assert exit_info.value.code == 2 and "no CUDA GPU" in capsys.readouterr().err


@pytest.mark.slow
def test_gpu_check_cpu_dry_run_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check", "--device", "cpu", "--tiny", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["complete"] is True and result["device"] == "cpu" and result["tiny"] is True
    assert "skipped" in result["parity"] and "skipped" in result["ddp"]
    speed = result["render_speed"]["torch"]
    assert speed["size"] == 32 and speed["batch"] == 2 and 0 < speed["forward_s"] <= speed["forward_backward_s"]
    assert "skipped" in result["render_speed"]["gsplat"]
    fit = result["fit"]["torch"]
    assert fit["seconds_per_scene"] > 0 and fit["backend"] == "torch" and "skipped" in result["fit"]["gsplat"]
    assert (fit["iters"], fit["num_layers"]) == (32, 16)
    train = result["train"]
    assert train["steps_timed"] == 4 and train["world_size"] == 1 and train["renderer_backend"] == "torch"
    assert train["batch_shape_per_process"] == [2, 5, 3, 24, 24]  # batch 2, 5 focus positions, 24-px crops
    assert train["samples_per_s"] > 0 and train["seconds_per_step"] > 0
    assert "fod500.yaml" in train["command"] and "fod500_gpu.yaml" not in train["command"]
    assert "skipped" in train["gpu_utilisation"] and train["peak_memory_mb"] is None  # CPU: no NVML
    after = result["train_gpu"]
    assert "fod500_gpu.yaml" in after["command"] and after["steps_timed"] == 4
    assert after["batch_shape_per_process"] == [2, 5, 3, 24, 24] and after["precision"] == "32-true"  # CPU
    assert result["train_gpu_over_train_samples_per_s"] > 0
    assert result["parity_triton"]["pass"] is True  # Triton's interpreter (conftest's TRITON_INTERPRET)
    assert all("skipped" in result[sec]["triton"] for sec in ("render_speed", "fit"))
