"""The generated pages (docs/results.md, docs/benchmarks.md, the README's figure and results-table blocks, the
figure blocks of docs/gpu.md and docs/splat_real.md) are current, and the generator turns a bench JSON into
rows and sections, skipping what is absent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from docs import make_results
from docs.make_results import (
    FIGURES,
    GPU_BLOCK,
    REAL_SECTION,
    SPLAT_REAL_BLOCK,
    TABLE,
    delta1_percent,
    render_pages,
    stale,
)

REPO = Path(__file__).resolve().parents[1]


def test_committed_pages_are_current() -> None:
    assert stale(REPO) == [], "run `make docs` (python -m docs.make_results) and commit the result"


def test_readme_is_short_and_ci_runs_its_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for command in ("make install", "sdgs fit --config lightning_configs/quickstart.yaml", "make test"):
        assert command in readme, command
    ci = (REPO / ".ci" / "run").read_text()
    assert "make install" in ci and "make test" in ci


def test_delta1_is_percent_whatever_the_json_stores() -> None:
    assert delta1_percent(0.25, "Eigen: 1e-3 < GT < 10 m, δ as fractions") == pytest.approx(25.0)
    assert delta1_percent(25.0, "DFV (clip to [0, 1.5] m)") == 25.0
    assert delta1_percent(None, "DFV") is None


def _tiny_repo(root: Path) -> Path:
    (root / "docs").mkdir(parents=True)
    (root / "bench").mkdir()
    (root / "README.md").write_text(
        "# x\n\n" + "\n".join(FIGURES) + "\n\n## Results\n\n" + "\n".join(TABLE) + "\n\nend\n"
    )
    return root


def test_real_photographs_become_rows_and_a_section_and_lead_the_figures(tmp_path: Path) -> None:
    repo = _tiny_repo(tmp_path)
    real = {
        "data": "DFD-indoor test split, 3 photos",
        "protocol": "Eigen: 1e-3 < GT < 10 m, per-image mean, δ as fractions",
        "rows": {
            "sdgs, self-supervised": {"abs_rel": 0.2, "rmse": 0.9, "delta1": 0.654, "note": "trained on DFD stacks"},
            "constant": {"abs_rel": 0.3, "rmse": 1.4, "delta1": 0.4},
            "ablation: older": {"abs_rel": 0.25, "rmse": 1.0, "delta1": 0.5, "command": "c", "carried": "2026-12-01"},
        },
        "dev_fold": {
            "run": "runs/fold", "training_scenes": 65, "scenes": ["a", "b"], "chosen_px": 32.0, "config_px": 32.0,
            "constant": {"abs_rel": 0.58, "rmse": 1.2, "delta1": 0.24},
            "smooth_px": {"0": {"abs_rel": 0.474, "rmse": 1.04, "delta1": 0.438},
                          "32": {"abs_rel": 0.472, "rmse": 1.03, "delta1": 0.442}},
        },
    }  # fmt: skip
    (repo / "bench" / "real.json").write_text(json.dumps(real))
    for name in ("real_photos.png", "prediction.png"):
        (repo / "docs" / name).write_bytes(b"")
    pages = render_pages(repo)
    results, readme = pages[repo / "docs" / "results.md"], pages[repo / "README.md"]
    assert f"## {REAL_SECTION}" in results and "trained on DFD stacks" in results
    assert "| sdgs, self-supervised | 0.200 | 0.900 | 65.4 |" in results  # δ1 fraction -> percent
    # a row measured before the output smoothing says so; the dev fold's choice is a table
    assert "(measured 2026-12-01; not re-run; without the output smoothing)" in results
    assert "first 65 training scenes, scored on the next 2" in results and "Chosen: σ = 32 px" in results
    assert "| 32 | 0.472 | 1.030 | 44.2 |" in results
    assert "| real photos (DFD-indoor test split, 3 photos) | sdgs, self-supervised | one image | 0.200 |" in readme
    assert "|  | constant | one image | 0.300 | 1.400 | 40.0 |" in readme
    figures = [line for line in readme.splitlines() if line.startswith("![")]
    assert [f.split("](")[1] for f in figures] == ["docs/real_photos.png)", "docs/prediction.png)"]
    assert readme.endswith("\nend\n")  # only the blocks change
    # the generator's own output is a fixed point
    for path, text in pages.items():
        path.write_text(text)
    assert stale(repo) == []


def test_absent_sources_are_skipped_cleanly(tmp_path: Path) -> None:
    repo = _tiny_repo(tmp_path)
    pages = render_pages(repo)
    assert REAL_SECTION not in pages[repo / "docs" / "results.md"]
    readme = pages[repo / "README.md"]
    assert "real_photos.png" not in readme and "| data | method |" in readme
    shutil.copy(REPO / "bench" / "train.json", repo / "bench" / "train.json")
    readme = render_pages(repo)[repo / "README.md"]
    assert "| procedural scenes (FoD500 optics), held out | **sdgs**, self-supervised | one image |" in readme


def test_missing_markers_are_an_error(tmp_path: Path) -> None:
    repo = _tiny_repo(tmp_path)
    (repo / "README.md").write_text("# no markers\n")
    with pytest.raises(ValueError, match="markers"):
        render_pages(repo)


def test_check_fails_until_the_pages_are_written(tmp_path: Path) -> None:
    repo = _tiny_repo(tmp_path)
    assert make_results.main(["--repo", str(repo), "--check"]) == 1
    assert make_results.main(["--repo", str(repo)]) == 0
    assert make_results.main(["--repo", str(repo), "--check"]) == 0


def _parity(backend: str, err: float) -> dict:
    e = {"max_abs": err, "max_rel_to_scale": err, "fraction_beyond_tol": 0.0}
    case = {"forward": {"image": e}, "gradient": {"means": e}}
    return {
        "backend": backend,
        "forward_tol_abs": 1e-4,
        "gradient_tol_rel_to_scale": 1e-3,
        "pass": True,
        "rasterize_gaussians": case,
        "render_defocus": case,
    }


def _throughput(samples_per_s: float, backend: str) -> dict:
    return {
        "steps_timed": 180,
        "world_size": 1,
        "batch_shape_per_process": [32, 5, 3, 224, 224],
        "samples_per_s": samples_per_s,
        "seconds_per_step": 0.1,
        "wall_s": 30.0,
        "renderer_backend": backend,
        "precision": "bf16-mixed",
        "peak_memory_mb": 2048.0,
        "gpu_utilisation": {"sm_util_mean_pct": 91.5},
    }


def test_gpu_block_reads_bench_gpu_check_output_and_names_what_it_lacks(tmp_path: Path) -> None:
    repo = _tiny_repo(tmp_path)
    page = repo / "docs" / "gpu.md"
    page.write_text("# GPU\n\nhow to run\n\n" + "\n".join(GPU_BLOCK) + "\n\nmeaning\n")
    speed = lambda s: {"batch": 8, "size": 256, "sigma_px_range": [0.5, 4.0], "forward_backward_s": s}  # noqa: E731
    fit = lambda s, b: {"seconds_per_scene": s, "iters": 32, "num_layers": 16, "size": 256, "batch": 8, "backend": b}  # noqa: E731
    gpu = {
        "date": "d",
        "machine": {"gpu": "Some GPU", "torch": "2.x"},
        "gsplat_kernels": {"available": True, "load_s": 80.5},
        "parity": _parity("gsplat", 2e-6),
        "parity_triton": _parity("triton", 3e-7),
        "render_speed": {
            "torch": speed(0.1),
            "gsplat": speed(0.3),
            "triton": speed(0.02),
            "triton_speedup_forward_backward": 5.0,
        },
        "fit": {
            "torch": fit(0.35, "torch"),
            "gsplat": fit(3.5, "gsplat"),
            "triton": fit(0.07, "triton"),
            "triton_over_torch_seconds": 0.2,
        },
        "train": _throughput(45.0, "torch"),
        "train_gpu": _throughput(90.0, "triton"),
        "ddp": {"skipped": "needs >= 2 GPUs (1 visible)"},
    }
    (repo / "bench" / "gpu.json").write_text(json.dumps(gpu))
    text = render_pages(repo)[page]
    assert text.startswith("# GPU\n\nhow to run\n") and text.endswith("\nmeaning\n")
    assert (
        "| renderer, 8 × 256², σ 0.5–4 px, forward + backward | torch 0.100 s, gsplat 0.300 s, triton 0.020 s |" in text
    )
    assert "triton 0.07 s" in text and "parity, triton vs torch backend" in text
    assert "90.0 focal stacks/s" in text and "GPU busy 91.5 %" in text and "192.0 stacks/s over the wall time" in text
    assert "Not in `bench/gpu.json`: `parity_seeds` (not run); `ddp` (needs >= 2 GPUs (1 visible))." in text
    # an older layout: one fit record, no triton anywhere
    gpu["fit"] = fit(3.5, "gsplat")
    for key in ("parity_triton", "train_gpu"):
        del gpu[key]
    del gpu["render_speed"]["triton"]
    (repo / "bench" / "gpu.json").write_text(json.dumps(gpu))
    text = render_pages(repo)[page]
    assert "| gsplat 3.50 s per scene |" in text
    assert "`train_gpu` (not run)" in text and "renderer and fit times of the triton backend." in text
    for path, new in render_pages(repo).items():
        path.write_text(new)
    assert stale(repo) == []


def test_hand_written_pages_are_optional_but_need_their_markers(tmp_path: Path) -> None:
    repo = _tiny_repo(tmp_path)
    assert repo / "docs" / "splat_real.md" not in render_pages(repo)
    (repo / "docs" / "splat_real.md").write_text("# no markers\n")
    with pytest.raises(ValueError, match="splat_real.md lacks"):
        render_pages(repo)
    (repo / "docs" / "splat_real.md").write_text("\n".join(SPLAT_REAL_BLOCK) + "\n")
    assert "No figures yet" in render_pages(repo)[repo / "docs" / "splat_real.md"]
    shutil.copy(REPO / "bench" / "splat_real.json", repo / "bench" / "splat_real.json")
    text = render_pages(repo)[repo / "docs" / "splat_real.md"]
    assert "### Held-out scenes, 160 px" in text and "| splatting stage | 0.105 |" in text
