"""One prepared GPU check: gsplat-vs-torch parity, renderer and splat-fit speed, training throughput, DDP.

    python -m bench.gpu_check --out bench/gpu.json                       (make gpu-check; needs CUDA)
    python -m bench.gpu_check --device cpu --tiny --out /tmp/gpu.json    (CPU dry run of every section)

Sections (each written to the JSON as soon as it finishes, so a run cut short keeps what it measured):

- ``parity``: CUDA gsplat backend vs torch backend, forward and gradients, for ``rasterize_gaussians``
  (random Gaussians, some outside the image, gradients w.r.t. means, covariances, colours, opacities,
  depths) and ``render_defocus`` (focal stack; gradients w.r.t. radiance, depth, opacity).
- ``parity_triton``: the same for the triton backend (fused kernels) vs torch.
- ``parity_seeds`` (``--parity-seeds K``): the same on K more random inputs, the worst error of each tensor.
- ``render_speed``: ``rasterize_gaussians`` forward and forward+backward at 256² px, B = 8, one Gaussian per
  pixel with sigma uniform in [0.5, 4] px, every backend (:func:`bench.render.run_one`), each with the GPU
  utilisation NVML sampled while it ran.
- ``fit``: ``fit_gaussians`` seconds per 256² procedural FoD500 scene (batch 8, after a warm-up batch), with
  the splatting-stage settings of ``lightning_configs/fod500.yaml``, torch, (CUDA) gsplat and triton backends.
- ``train``: 200 training steps of ``lightning_configs/fod500.yaml`` without its GPU variant (its networks, batch
  8, 224-px crops of 256² scenes, fp32, torch renderer, fits read from disk every step) on procedural data
  through ``sdgs fit``; samples/s after 20 warm-up steps, seconds per step, peak memory, the GPU utilisation
  NVML sampled over the timed steps (:class:`UtilSampler`), the renderer backend that ran, and the seconds
  before the first step (splatting stage of the training scenes).
- ``train_gpu``: the same with ``lightning_configs/fod500_gpu.yaml`` layered on (bf16, channels-last, its
  batch, auto renderer = triton, fits kept on the GPU): the after of the before/after pair.
- ``ddp``: the same for 100 steps on 2 GPUs with ``lightning_configs/trainer/ddp.yaml`` (only with >= 2 GPUs).

The whole check is bounded by ``--budget-s`` (default 450 s): a section that would start past it is
recorded as skipped. Not counted: loading gsplat's CUDA kernels, which gsplat's PyPI wheel JIT-compiles on
its first use on a machine (minutes; needs nvcc; cached afterwards), recorded as ``gsplat_kernels.load_s``.
Exit status 1 if a section failed, parity is out of tolerance, or (on CUDA) gsplat's kernels did not load.
``--sections NAME …`` runs some sections only. ``--tiny`` shrinks every size so a CPU run takes under a
minute; CPU runs never write ``bench/gpu.json`` (that file holds GPU figures only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import fields, replace
from pathlib import Path

import lightning as L
import torch

from bench.common import write_json

REPO = Path(__file__).resolve().parents[1]
GPU_JSON = REPO / "bench" / "gpu.json"
FOD500_YAML = REPO / "lightning_configs" / "fod500.yaml"
FOD500_GPU_YAML = REPO / "lightning_configs" / "fod500_gpu.yaml"

# Full sizes (GPU) and the --tiny ones (CPU dry run): same code path, smaller numbers.
SIZES = {
    "full": {"render": (8, 256), "fit": (16, 256), "train": (200, 20, 256, 224, 8, 64), "ddp_steps": 100},
    "tiny": {"render": (2, 32), "fit": (2, 32), "train": (6, 2, 32, 24, 2, 4), "ddp_steps": 4},
}
#: Parity tolerances (float32 on both backends; the sums run in a different order). The renderer cuts every
#: kernel at its 3-sigma ellipse, and the two backends' projections round differently, so a pixel lying on a
#: cut can fall inside on one backend and outside on the other: a "cut flip", worth one kernel at the cut
#: (``exp(-4.5) / (2 pi sigma^2)`` <= 0.021 for the narrowest footprint, sigma = 12^-0.5 px) in the coverage
#: and the premultiplied sums. Colour and depth are those sums divided by the coverage, so they are compared
#: where the coverage is at least 0.5 (below, one flip is magnified without bound). Agreement means: at most
#: FLIP_FRACTION of the elements beyond the tolerance, and none beyond FLIP_BOUND of the reference's scale.
FWD_TOL, GRAD_TOL = 1e-4, 1e-3
FLIP_FRACTION, FLIP_BOUND = 1e-3, 0.1
MIN_COVERAGE = 0.5
NO_GSPLAT = "the gsplat backend needs CUDA and gsplat's kernels"
NO_TRITON = "the triton backend needs CUDA and the triton package (on CPU only Triton's interpreter: tests)"
#: Seconds between NVML utilisation reads. NVML's figure is the share of its own sample period (1/6 s to 1 s
#: depending on the GPU) in which a kernel ran, the number `nvidia-smi dmon` shows as "sm".
UTIL_PERIOD_S = 0.05


class UtilSampler:
    """GPU utilisation (%) read from NVML every :data:`UTIL_PERIOD_S` in a thread, between ``start`` and
    ``stop`` (or as a context manager). ``summary()`` is ``{"skipped": why}`` without NVML or without CUDA.

    ``nvidia-ml-py`` (import name ``pynvml``) ships with the ``gpu`` extra; it reads the driver's counters and
    adds no work to the GPU.
    """

    def __init__(self, device_index: int | None = 0) -> None:
        self.samples: list[float] = []
        self.memory_samples: list[float] = []
        self.why_not: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handle = None
        if device_index is None or not torch.cuda.is_available():
            self.why_not = "no CUDA device"
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
            self._nvml = pynvml
        except Exception as err:  # ImportError, NVMLError (no driver), ...
            self.why_not = f"NVML unavailable: {type(err).__name__}: {err}"

    def _run(self) -> None:
        while not self._stop.is_set():
            rates = self._nvml.nvmlDeviceGetUtilizationRates(self._handle)
            self.samples.append(float(rates.gpu))
            self.memory_samples.append(float(rates.memory))
            self._stop.wait(UTIL_PERIOD_S)

    def start(self) -> UtilSampler:
        if self._handle is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> dict:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        return self.summary()

    def __enter__(self) -> UtilSampler:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def summary(self) -> dict:
        """Mean, 10th/50th percentile and the share of reads at >= 80 % of the SM utilisation, and the mean
        memory-controller utilisation, over the reads taken."""
        if self.why_not is not None:
            return {"skipped": self.why_not}
        if not self.samples:
            return {"skipped": "no NVML read in the interval (shorter than one period)"}
        ordered = sorted(self.samples)
        pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
        return {
            "sm_util_mean_pct": round(sum(ordered) / len(ordered), 1), "sm_util_p10_pct": pick(0.1),
            "sm_util_p50_pct": pick(0.5), "fraction_reads_at_least_80_pct": round(
                sum(v >= 80 for v in ordered) / len(ordered), 3),
            "memory_util_mean_pct": round(sum(self.memory_samples) / len(self.memory_samples), 1),
            "reads": len(ordered), "period_s": UTIL_PERIOD_S,
        }  # fmt: skip


def _max_err(a: torch.Tensor, b: torch.Tensor, tol: float, relative: bool) -> dict:
    """Largest absolute difference, the same relative to the reference's largest magnitude, and the fraction
    of elements beyond ``tol`` (absolute, or relative to that magnitude)."""
    a, b = a.detach(), b.detach()
    if b.numel() == 0:
        return {"max_abs": 0.0, "max_rel_to_scale": 0.0, "fraction_beyond_tol": 0.0}
    diff = (a - b).abs()
    scale = max(float(b.abs().max()), 1e-30)
    err = float(diff.max())
    beyond = float((diff > tol * (scale if relative else 1.0)).float().mean())
    return {"max_abs": err, "max_rel_to_scale": err / scale, "fraction_beyond_tol": beyond}


def forward_errors(out: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> dict[str, dict]:
    """:func:`_max_err` of a renderer output against the reference backend's: ``alpha`` everywhere, ``image``
    and ``depth`` where the reference's coverage is at least :data:`MIN_COVERAGE`."""
    covered = ref["alpha"].detach() >= MIN_COVERAGE
    errs = {"alpha": _max_err(out["alpha"], ref["alpha"], FWD_TOL, relative=False)}
    for key in ("image", "depth"):
        mask = covered.expand_as(ref[key])
        errs[key] = _max_err(out[key][mask], ref[key][mask], FWD_TOL, relative=False)
    return errs


def gradient_errors(grads: list[torch.Tensor], ref: list[torch.Tensor], names) -> dict[str, dict]:
    """:func:`_max_err` of each gradient against the reference backend's, tolerance relative to its scale."""
    return {name: _max_err(g, r, GRAD_TOL, relative=True) for name, g, r in zip(names, grads, ref)}


def agrees(err: dict) -> bool:
    """The parity criterion above, for one :func:`_max_err` record."""
    return err["fraction_beyond_tol"] <= FLIP_FRACTION and err["max_rel_to_scale"] <= FLIP_BOUND


def parity(device: str, tiny: bool = False, seed: int = 0, backend: str = "gsplat") -> dict:
    """``backend`` (gsplat or triton) vs torch backend: forward and backward of the rasterizer and the
    defocus renderer.

    Runs where ``backend`` resolves for ``device`` (gsplat: CUDA with gsplat's kernels, on CPU only under the
    test suite's routing to gsplat's torch references; triton: CUDA, on CPU only under Triton's interpreter),
    else returns why it was skipped.
    """
    from sdgs.optics import FOD500
    from sdgs.render import rasterize as rasterize_mod
    from sdgs.render import rasterize_gaussians, render_defocus

    try:
        rasterize_mod.resolve_backend(backend, torch.device(device))
    except RuntimeError as err:
        return {"skipped": str(err)}
    g = torch.Generator().manual_seed(seed)
    b, n, h, w = (2, 60, 37, 21) if tiny else (3, 400, 70, 45)  # neither side a multiple of the 16-px tile
    rh, rw = (20, 18) if tiny else (40, 36)
    means = torch.rand(b, n, 2, generator=g) * torch.tensor([w + 20.0, h + 20.0]) - 10.0  # some outside
    a = torch.randn(b, n, 2, 2, generator=g) * 2.0
    covs = a @ a.transpose(-1, -2) + 0.3 * torch.eye(2)
    colors, opac = torch.rand(b, n, 3, generator=g), torch.rand(b, n, generator=g)
    raster_in = [means, covs, colors, opac, torch.rand(b, n, generator=g) + 0.5]
    rgb, depth = torch.rand(2, 3, rh, rw, generator=g), torch.rand(2, 1, rh, rw, generator=g) * 2.5 + 0.15
    opacity = torch.rand(2, 1, rh, rw, generator=g) * 0.5 + 0.5
    focus = torch.tensor([[0.1, 0.7], [0.3, 1.5]], device=device)
    cases = {
        "rasterize_gaussians": (
            raster_in, ("means", "covariances", "colours", "opacities", "depths"),
            lambda t, be: rasterize_gaussians(*t, h, w, num_layers=8, backend=be),
        ),
        "render_defocus": (
            [rgb, depth, opacity], ("radiance", "depth", "opacity"),
            lambda t, be: render_defocus(t[0], t[1], focus, FOD500, backend=be, opacity=t[2]),
        ),
    }  # fmt: skip
    report = {
        "backend": backend, "seed": seed, "forward_tol_abs": FWD_TOL, "gradient_tol_rel_to_scale": GRAD_TOL,
        "flip_fraction": FLIP_FRACTION, "flip_bound_rel_to_scale": FLIP_BOUND,
        "colour_and_depth_where_coverage_at_least": MIN_COVERAGE,
    }  # fmt: skip
    ok = True
    for case, (inputs, names, fn) in cases.items():
        outs, grads = {}, {}
        for name in ("torch", backend):
            leaves = [t.to(device).requires_grad_() for t in inputs]
            out = fn(leaves, name)
            weight = torch.linspace(0.2, 1.0, out["image"].shape[-1], device=device)
            sum((v * weight).sum() * (i + 1) for i, v in enumerate(out.values())).backward()
            outs[name], grads[name] = out, [t.grad for t in leaves]
        forward = forward_errors(outs[backend], outs["torch"])
        gradient = gradient_errors(grads[backend], grads["torch"], names)
        ok &= all(agrees(e) for e in [*forward.values(), *gradient.values()])
        report[case] = {"forward": forward, "gradient": gradient}
    report["pass"] = ok
    return report


def parity_sweep(device: str, seeds: int, tiny: bool = False) -> dict:
    """:func:`parity` for seeds 1 … ``seeds``: whether each passes and, per compared tensor, the worst of each
    error over the seeds."""
    reports = [parity(device, tiny, seed) for seed in range(1, seeds + 1)]
    if "skipped" in reports[0]:
        return reports[0]
    worst: dict = {}
    for rep in reports:
        for case in (k for k, v in rep.items() if isinstance(v, dict) and "forward" in v):
            for kind in ("forward", "gradient"):
                for name, err in rep[case][kind].items():
                    slot = worst.setdefault(case, {}).setdefault(kind, {}).setdefault(name, {})
                    for key, value in err.items():
                        slot[key] = max(slot.get(key, 0.0), value)
    return {"seeds": list(range(1, seeds + 1)), "passed": [r["pass"] for r in reports], "worst": worst,
            "pass": all(r["pass"] for r in reports)}  # fmt: skip


def _fast_backends(device: str) -> dict[str, str | None]:
    """The non-reference backends and, for each, why it cannot run on ``device`` (None: it can)."""
    from sdgs.render import gsplat_available, triton_available

    cuda = device == "cuda"
    return {
        "gsplat": None if cuda and gsplat_available() else NO_GSPLAT,
        "triton": None if cuda and triton_available("cuda") else NO_TRITON,
    }


def render_speed(device: str, batch: int, size: int) -> dict:
    """Every backend at ``size``² px, ``batch`` images, sigma in [0.5, 4] px (torch only without CUDA), each
    with the GPU utilisation while it ran (warm-up and repeats: :func:`bench.render.run_one`)."""
    from bench.render import run_one

    def timed(backend: str) -> dict:
        sampler = UtilSampler(0 if device == "cuda" else None)
        with sampler:
            result = run_one(backend, batch, size, 4.0, device)
        return {**result, "gpu_utilisation": sampler.summary()}

    out = {"torch": timed("torch")}
    for backend, why_not in _fast_backends(device).items():
        if why_not is not None:
            out[backend] = {"skipped": why_not}
            continue
        out[backend] = timed(backend)
        out[f"{backend}_speedup_forward_backward"] = round(
            out["torch"]["forward_backward_s"] / out[backend]["forward_backward_s"], 2
        )
    return out


def stage_settings() -> dict:
    """The splatting-stage settings of ``fod500.yaml`` (base.yaml's ``splat`` updated by the experiment's)."""
    from sdgs.cli.lightning import splat_settings

    return splat_settings(FOD500_YAML)


def fit_speed(device: str, scenes_n: int, size: int, backend: str | None = None) -> dict:
    """``fit_gaussians`` seconds per scene (batch 8) after one warm-up batch (``backend``: fod500.yaml's)."""
    from bench.splat import fit_all, scenes
    from sdgs.render import resolve_backend
    from sdgs.splatting import SplatFitConfig

    known = {f.name for f in fields(SplatFitConfig)}
    cfg = SplatFitConfig(**{k: v for k, v in stage_settings().items() if k in known})
    cfg = replace(cfg, backend=backend or cfg.backend)
    stack, _, cam = scenes(scenes_n, size, seed=99)
    batch = min(8, scenes_n)
    fit_all(stack[:batch], cam, cfg, batch=batch, device=device)  # warm-up: CUDA init, kernel loads
    _, sec = fit_all(stack, cam, cfg, batch=batch, device=device)
    return {
        "seconds_per_scene": round(sec, 4), "scenes": scenes_n, "size": size, "batch": batch,
        "iters": cfg.iters, "num_layers": cfg.num_layers, "backend": resolve_backend(cfg.backend, torch.device(device)),
    }  # fmt: skip


def fit_speeds(device: str, scenes_n: int, size: int) -> dict:
    """:func:`fit_speed` with the torch backend and, on CUDA, with gsplat (half the scenes: it is the slower
    one) and triton where they run, with their ratios to torch."""
    out = {"torch": fit_speed(device, scenes_n, size, "torch")}
    for backend, why_not in _fast_backends(device).items():
        if why_not is not None:
            out[backend] = {"skipped": why_not}
            continue
        out[backend] = fit_speed(device, max(1, scenes_n // 2) if backend == "gsplat" else scenes_n, size, backend)
        out[f"{backend}_over_torch_seconds"] = round(
            out[backend]["seconds_per_scene"] / out["torch"]["seconds_per_scene"], 3
        )
    return out


class TrainThroughput(L.Callback):
    """Training samples/s after ``warmup`` steps, the renderer backend that ran; rank 0 writes ``out`` (JSON).

    ``samples_per_s`` times the training steps alone (batch start to batch end, CUDA synchronised), so
    validation and checkpointing are left out; ``wall_s`` is the wall time after the warm-up with them. On
    CUDA, NVML samples the GPU utilisation from the first timed step to the end of training
    (:class:`UtilSampler`; the synchronisations at each step's ends cost a little of it, as they do of the
    time) and ``peak_memory_mb`` is the CUDA peak allocation over the timed steps. The
    splatting stage fits a scene the first time a batch holds it, inside that step: with ``warmup`` of one
    epoch the timed steps hold no fits (``seconds_to_warmup`` does). Added to ``sdgs fit`` by :func:`train_run`
    and :mod:`bench.gpu_train` (``--trainer.callbacks+=bench.gpu_check.TrainThroughput``).
    """

    def __init__(self, out: str, warmup: int = 20) -> None:
        self.out, self.warmup = out, warmup
        self.t_fit = time.perf_counter()
        self.t_first: float | None = None  # first training batch
        self.t0: float | None = None  # first timed batch
        self.t_step: float | None = None
        self.samples, self.steps, self.step_s = 0, 0, 0.0
        self.batch_shape: list[int] = []
        self.sampler: UtilSampler | None = None

    def _sync(self, pl_module: L.LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.t_first is None:
            self.t_first = self._sync(pl_module)
            self.batch_shape = list(batch["stack"].shape)
        if trainer.global_step >= self.warmup:
            self.t_step = self._sync(pl_module)
            if self.t0 is None:
                self.t0 = self.t_step
                cuda = pl_module.device.type == "cuda"
                if cuda:
                    torch.cuda.reset_peak_memory_stats(pl_module.device)
                # NVML counts every GPU of the machine; CUDA's index equals it unless CUDA_VISIBLE_DEVICES remaps
                index = (pl_module.device.index or 0) if cuda else None
                self.sampler = UtilSampler(index).start()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.t_step is not None:
            self.step_s += self._sync(pl_module) - self.t_step
            self.samples += batch["stack"].shape[0]
            self.steps += 1
            self.t_step = None

    def on_train_end(self, trainer, pl_module) -> None:
        from sdgs.render import resolve_backend

        t1 = self._sync(pl_module)
        utilisation = self.sampler.stop() if self.sampler is not None else {"skipped": "no timed step"}
        if not trainer.is_global_zero:
            return
        renderer = getattr(pl_module, "renderer", None)
        if self.t0 is None or self.steps == 0:  # say so, rather than fail the run whose figures are wanted
            result = {"steps_timed": 0, "error": f"training stopped before the warm-up of {self.warmup} steps ended"}
            Path(self.out).write_text(json.dumps(result))
            return
        result = {
            "steps_timed": self.steps, "warmup_steps": self.warmup, "world_size": trainer.world_size,
            "batch_shape_per_process": self.batch_shape, "seconds": round(self.step_s, 3),
            "samples_per_s": round(self.samples * trainer.world_size / self.step_s, 2),
            "seconds_per_step": round(self.step_s / self.steps, 4),
            "wall_s": round(t1 - self.t0, 2),
            "seconds_before_first_step": round(self.t_first - self.t_fit, 2),
            "seconds_to_warmup": round(self.t0 - self.t_first, 2),
            "renderer_backend": None if renderer is None else resolve_backend(renderer.backend, pl_module.device),
            "precision": str(trainer.precision), "gpu_utilisation": utilisation,
            "peak_memory_mb": round(torch.cuda.max_memory_allocated(pl_module.device) / 2**20, 1)
            if pl_module.device.type == "cuda" else None,
            "device": torch.cuda.get_device_name(pl_module.device) if pl_module.device.type == "cuda" else "cpu",
        }  # fmt: skip
        Path(self.out).write_text(json.dumps(result))


def train_run(device: str, steps: int, warmup: int, size: int, crop: int, batch: int | None, scenes_n: int,
              timeout_s: float, ddp: bool = False, gpu_variant: bool = False) -> dict:  # fmt: skip
    """``sdgs fit`` with ``fod500.yaml`` on procedural data in a scratch folder; returns the callback's JSON.

    ``gpu_variant``: with ``fod500_gpu.yaml`` layered on, and its batch size unless ``batch`` is given.
    Without it, the plain settings: fp32, torch renderer, splatting fits read from disk every step.
    On CPU the variant keeps fp32 (bf16 autocast is a GPU setting; the dry run checks the plumbing).
    """
    with tempfile.TemporaryDirectory(prefix="sdgs_gpu_check_") as tmp:
        out = Path(tmp) / "throughput.json"
        configs = ["--config", str(FOD500_YAML)]
        if gpu_variant:
            configs += ["--config", str(FOD500_GPU_YAML)]
            if device != "cuda":
                configs += ["--trainer.precision=32-true"]
        else:
            configs += ["--splat.backend=torch", "--splat.keep_on_device=false"]
        configs += ["--config", str(REPO / "lightning_configs" / "logger" / "csv.yaml")]
        if ddp:
            name = "ddp.yaml" if device == "cuda" else "cpu_ddp.yaml"
            configs += ["--config", str(REPO / "lightning_configs" / "trainer" / name), "--trainer.devices=2"]
        else:
            configs += [f"--trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}", "--trainer.devices=1"]
        cmd = [
            sys.executable, "-m", "sdgs.cli", "fit", *configs,
            "--data=datamodules.SyntheticDataModule", "--data.init_args.data_dir=null",  # in memory, not data/fod500
            f"--data.init_args.size={size}", f"--data.init_args.crop_size={crop}",
            *([f"--data.init_args.batch_size={batch}"] if batch else []), f"--data.init_args.num_train={scenes_n}",
            "--data.init_args.num_val=2", "--data.init_args.num_test=2",
            # no loader workers: the splatting stage has generated every scene in this process already, so
            # the timed steps hold no procedural generation (FoD500 files would not need it either)
            "--data.init_args.num_workers=0", "--data.init_args.pin_memory=false",
            f"--trainer.max_steps={steps}", "--trainer.max_epochs=-1", "--trainer.limit_val_batches=0",
            "--trainer.val_check_interval=1.0", "--trainer.check_val_every_n_epoch=1",
            "--trainer.enable_progress_bar=false",
            "--trainer.callbacks+=bench.gpu_check.TrainThroughput",
            f"--trainer.callbacks.init_args.out={out}", f"--trainer.callbacks.init_args.warmup={warmup}",
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        env.setdefault("WANDB_MODE", "offline")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=max(timeout_s, 1))
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stdout + proc.stderr)[-3000:]
            raise RuntimeError(f"sdgs fit exited with {proc.returncode}; last output:\n{tail}")
        result = json.loads(out.read_text())
        if "error" in result:  # e.g. the warm-up never ended: nothing was timed
            raise RuntimeError(result["error"])
        result["wall_s_including_startup"] = round(time.perf_counter() - t0, 1)
        result["command"] = " ".join(cmd[1:])
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(GPU_JSON), help="JSON to write (CPU runs need another path)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (CPU dry run of every section)")
    parser.add_argument("--budget-s", type=float, default=450.0, help="skip sections that would start past this")
    parser.add_argument("--ddp", action="store_true", help="also run the 2-process DDP section on CPU (gloo)")
    parser.add_argument("--parity-seeds", type=int, default=0, help="parity on this many more random inputs")
    parser.add_argument("--sections", nargs="+", metavar="NAME", help="run only these sections (default: all)")
    parser.add_argument("--commit", default=None, help="commit to record (default: git's; no .git on a copy)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no CUDA GPU; this check is for GPU machines (CPU dry run: "
                     "--device cpu --tiny --out /tmp/gpu.json)")  # fmt: skip
    if args.device == "cpu" and Path(args.out).resolve() == GPU_JSON:
        parser.error(f"{GPU_JSON} holds GPU figures only; give a CPU run another --out")
    sizes = SIZES["tiny" if args.tiny else "full"]
    from bench.train import commit

    payload = {
        "device": args.device, "tiny": args.tiny, "budget_s": args.budget_s, "complete": False,
        "commit": args.commit or commit(),
    }  # fmt: skip
    write_json(args.out, payload, echo=False)  # a run cut short in the kernel build still leaves its record
    if args.device == "cuda":
        # gsplat's PyPI wheel JIT-compiles its kernels on first use (minutes, once per machine, cached):
        # outside the budget, and recorded
        from sdgs.render import gsplat_available

        t0 = time.perf_counter()
        payload["gsplat_kernels"] = {"available": gsplat_available(), "load_s": round(time.perf_counter() - t0, 1)}
    t_start = time.perf_counter()
    gpus = torch.cuda.device_count() if args.device == "cuda" else 0
    steps, warmup, size, crop, batch, scenes_n = sizes["train"]
    left = lambda: args.budget_s - (time.perf_counter() - t_start)  # noqa: E731
    sections = {
        "parity": lambda: parity(args.device, args.tiny),
        "render_speed": lambda: render_speed(args.device, *sizes["render"]),
        "fit": lambda: fit_speeds(args.device, *sizes["fit"]),
        "parity_triton": lambda: parity(args.device, args.tiny, backend="triton"),
        "train": lambda: train_run(args.device, steps, warmup, size, crop, batch, scenes_n, left()),
        # the GPU config's own batch on a GPU; the tiny dry run keeps its tiny batch
        "train_gpu": lambda: train_run(
            args.device, steps, warmup, size, crop, batch if args.tiny else None, scenes_n, left(), gpu_variant=True
        ),
    }
    if gpus >= 2 or args.ddp:
        ddp_steps = sizes["ddp_steps"]
        sections["ddp"] = lambda: train_run(
            args.device, ddp_steps, min(warmup, ddp_steps // 2), size, crop, batch, scenes_n, left(), ddp=True
        )
    if args.parity_seeds:
        sections = {
            "parity": sections["parity"],
            "parity_seeds": lambda: parity_sweep(args.device, args.parity_seeds, args.tiny),
            **sections,
        }
    if args.sections:
        if unknown := sorted(set(args.sections) - set(sections)):
            parser.error(f"--sections: unknown {unknown}; this run has {sorted(sections)}")
        sections = {k: v for k, v in sections.items() if k in args.sections}
    payload["gpus"] = gpus
    if torch.cuda.is_available() and args.device == "cuda":
        payload["machine"] = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    if "ddp" not in sections and not args.sections:
        payload["ddp"] = {"skipped": f"needs >= 2 GPUs ({gpus} visible)"}
    failed = False
    for name, run in sections.items():
        if left() <= 0:
            payload[name] = {"skipped": f"time budget of {args.budget_s} s spent"}
            continue
        t0 = time.perf_counter()
        try:
            payload[name] = run()
        except Exception as err:  # record and go on: one broken section must not lose the others' figures
            payload[name] = {"error": f"{type(err).__name__}: {err}"}
            failed = True
        payload[name]["section_s"] = round(time.perf_counter() - t0, 1)
        print(f"[gpu-check] {name}: {payload[name]}", flush=True)
        write_json(args.out, payload, echo=False)
    payload["complete"] = True
    payload["total_s"] = round(time.perf_counter() - t_start, 1)
    failed |= any(payload.get(name, {}).get("pass") is False for name in ("parity", "parity_seeds", "parity_triton"))
    if "samples_per_s" in payload.get("train", {}) and "samples_per_s" in payload.get("train_gpu", {}):
        payload["train_gpu_over_train_samples_per_s"] = round(
            payload["train_gpu"]["samples_per_s"] / payload["train"]["samples_per_s"], 2
        )
    failed |= payload.get("gsplat_kernels", {}).get("available") is False
    write_json(args.out, payload, echo=False)
    print(f"[gpu-check] wrote {args.out} in {payload['total_s']} s{' (with failures)' if failed else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
