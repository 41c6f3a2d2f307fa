"""Renderer speed and memory: torch backend (and gsplat on CUDA) vs the naive pair-list reference.

    python -m bench.render --out bench/render.json

Each configuration runs in a fresh subprocess so its peak memory (max RSS on CPU, CUDA peak allocation on
GPU) is its own. Times are the best of 3 after a warm-up; ratios compare runs of this one invocation.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import torch

from bench.common import best_of, write_json


def grid_gaussians(b: int, size: int, sigma_max: float, device: str, seed: int = 0):
    """One Gaussian per pixel with sigma uniform in [0.5, sigma_max] px (the reference benchmark's input)."""
    g = torch.Generator().manual_seed(seed)
    n = size * size
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    means = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)[None].expand(b, n, 2).contiguous()
    sigma = torch.rand(b, n, generator=g) * (sigma_max - 0.5) + 0.5
    cov = (sigma**2)[..., None, None] * torch.eye(2)
    colors = torch.rand(b, n, 3, generator=g)
    depths = torch.rand(b, n, generator=g) * 2 + 0.5
    opac = torch.ones(b, n)
    pairs = float((torch.ceil(3 * sigma) * 2 + 1).pow(2).sum())  # box pairs before the circular cut
    to = lambda t: t.to(device)  # noqa: E731
    return [to(means), to(cov), to(colors), to(opac), to(depths)], pairs


def run_one(backend: str, b: int, size: int, sigma_max: float, device: str) -> dict:
    from sdgs.render import rasterize_gaussians
    from sdgs.render.reference import naive_alpha_splatter

    args, pairs = grid_gaussians(b, size, sigma_max, device)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def forward():
        with torch.no_grad():
            if backend == "naive":
                return naive_alpha_splatter(*args, size, size)
            return rasterize_gaussians(*args, size, size, backend=backend)["image"]

    def forward_backward():
        leaf = [t.clone().requires_grad_() if i in (1, 2) else t for i, t in enumerate(args)]
        if backend == "naive":
            out = naive_alpha_splatter(*leaf, size, size)
        else:
            out = rasterize_gaussians(*leaf, size, size, backend=backend)["image"]
        out.sum().backward()

    repeats = 1 if backend == "naive" else 3
    t_fwd = best_of(forward, repeats=repeats)
    t_fb = best_of(forward_backward, repeats=repeats)
    if device == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    return {
        "backend": backend, "device": device, "batch": b, "size": size, "sigma_px_range": [0.5, sigma_max],
        "box_pairs_millions": round(pairs / 1e6, 2), "forward_s": round(t_fwd, 4),
        "forward_backward_s": round(t_fb, 4), "peak_memory_mb": round(peak_mb, 1),
        "forward_backward_s_per_million_pairs": round(t_fb / (pairs / 1e6), 4),
    }  # fmt: skip


def spawn(backend: str, b: int, size: int, sigma_max: float, device: str) -> dict:
    cmd = [sys.executable, "-m", "bench.render", "--single", backend, str(b), str(size), str(sigma_max), device]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    print(result, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="bench/render.json")
    parser.add_argument("--single", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--skip-reference", action="store_true", help="skip the slow naive reference")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.single:
        backend, b, size, sigma_max, device = args.single
        print(json.dumps(run_one(backend, int(b), int(size), float(sigma_max), device)))
        return
    results = []
    if not args.skip_reference:
        results.append(spawn("naive", 1, 256, 4.0, "cpu"))
    for size in (128, 256):
        for b in (1, 4):
            for sigma_max in (2.0, 4.0):
                results.append(spawn("torch", b, size, sigma_max, "cpu"))
    summary = {}
    ref = next((r for r in results if r["backend"] == "naive"), None)
    ours = next(r for r in results if r["backend"] == "torch" and r["size"] == 256 and r["batch"] == 1
                and r["sigma_px_range"][1] == 4.0)  # fmt: skip
    if ref:
        summary["torch_vs_naive_forward_backward_ratio_256px_b1_sigma_0.5_4"] = round(
            ours["forward_backward_s"] / ref["forward_backward_s"], 3
        )
    if torch.cuda.is_available():
        from sdgs.render import gsplat_available

        if gsplat_available():
            for size in (256, 512):
                results.append(spawn("gsplat", 8, size, 4.0, "cuda"))
            results.append(spawn("torch", 8, 256, 4.0, "cuda"))
            gs = next(r for r in results if r["backend"] == "gsplat" and r["size"] == 256)
            tc = next(r for r in results if r["backend"] == "torch" and r["device"] == "cuda")
            summary["gsplat_speedup_over_torch_on_gpu_256px_b8"] = round(
                tc["forward_backward_s"] / gs["forward_backward_s"], 1
            )
    write_json(args.out, {"summary": summary, "results": results})


if __name__ == "__main__":
    main()
