"""The triton backend against the torch reference backend: forward and gradients.

Without a GPU the kernels run in Triton's CPU interpreter (``TRITON_INTERPRET=1``, set by conftest.py before
the kernels are imported), on CPU tensors; with one, on CUDA tensors. The kernels compute in float32; the
reference runs in float64, so the tolerances are float32 round-off on sums of a few hundred terms.
"""

from __future__ import annotations

import pytest
import torch

from sdgs.optics import FOD500
from sdgs.render import rasterize as rasterize_mod
from sdgs.render import rasterize_gaussians, render_defocus, resolve_backend, triton_available

pytest.importorskip("triton")
DEV = torch.device("cuda" if torch.cuda.is_available() else "cpu")
pytestmark = pytest.mark.skipif(not triton_available(DEV.type), reason="triton cannot run the kernels here")

FWD_ATOL = 2e-5
GRAD_RTOL = 2e-4  # relative to the largest gradient magnitude of the tensor


def _random_gaussians(b: int, n: int, h: int, w: int, big: bool = False):
    """Random anisotropic Gaussians, some centres outside the image; ``big`` gives sigma up to ~5 px."""
    g = torch.Generator().manual_seed(b * 1000 + n + h)
    dt = torch.float64
    means = torch.rand(b, n, 2, generator=g, dtype=dt) * torch.tensor([w + 4.0, h + 4.0], dtype=dt) - 2.0
    a = torch.randn(b, n, 2, 2, generator=g, dtype=dt) * (2.5 if big else 0.8)
    covs = a @ a.transpose(-1, -2) + 0.3 * torch.eye(2, dtype=dt)
    colors = torch.rand(b, n, 3, generator=g, dtype=dt)
    opac = torch.rand(b, n, generator=g, dtype=dt)
    depths = torch.rand(b, n, generator=g, dtype=dt) * 2 + 0.5
    return [t.to(DEV) for t in (means, covs, colors, opac, depths)]


def _run(fn, inputs: list[torch.Tensor], weights: dict[str, torch.Tensor] | None = None):
    """Outputs and the gradients of a fixed random projection of every output w.r.t. ``inputs``."""
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*inputs)
    g = torch.Generator().manual_seed(7)
    weights = weights or {k: torch.randn(v.shape, generator=g, dtype=torch.float64).to(DEV) for k, v in out.items()}
    loss = sum((out[k].double() * weights[k]).sum() for k in out)
    grads = torch.autograd.grad(loss, inputs)
    return {k: v.detach() for k, v in out.items()}, grads, weights


def _assert_parity(fn_ref, fn_tri, inputs, names) -> None:
    ref, g_ref, weights = _run(fn_ref, inputs)
    tri, g_tri, _ = _run(fn_tri, inputs, weights)
    for key in ref:
        assert tri[key].dtype == ref[key].dtype and tri[key].shape == ref[key].shape, key
        torch.testing.assert_close(tri[key], ref[key], atol=FWD_ATOL, rtol=1e-4, msg=f"forward {key}")
    for name, gt, gr in zip(names, g_tri, g_ref):
        scale = float(gr.abs().max().clamp_min(1e-12))
        torch.testing.assert_close(gt, gr, atol=GRAD_RTOL * scale, rtol=0, msg=f"d/d {name}")


RAST_NAMES = ("means2d", "covars2d", "colors", "opacities", "depths")


@pytest.mark.parametrize(
    ("b", "n", "h", "w", "layers", "big"),
    [
        (1, 40, 9, 9, 1, False),  # one layer: pure additive splat + normalisation
        (2, 30, 11, 13, 3, False),  # odd sizes, B > 1
        (3, 50, 7, 17, 8, False),  # many layers, some empty
        (2, 25, 13, 10, 4, True),  # wide kernels (boxes of ~30 px): several offset chunks per block
    ],
)
def test_triton_rasterizer_matches_torch(b: int, n: int, h: int, w: int, layers: int, big: bool) -> None:
    args = _random_gaussians(b, n, h, w, big)
    fns = [lambda *a, be=be: rasterize_gaussians(*a, h, w, num_layers=layers, backend=be) for be in ("torch", "triton")]
    _assert_parity(*fns, args, RAST_NAMES)


def test_triton_occlusion_by_explicit_layers() -> None:
    """A far plane behind two near splat grids: saturated near coverage (> 1, so alpha_k = 1 and the colour
    is renormalised) hides the far plane; thin near splats (item 1) let it show through."""
    h = w = 10
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    grid = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1).double()
    n = h * w
    means = torch.cat([grid, grid + 0.3, grid - 0.4], 0)[None].repeat(2, 1, 1)
    covs = torch.eye(2, dtype=torch.float64).expand(2, 3 * n, 2, 2) * 1.5
    colors = torch.rand(2, 3 * n, 3, dtype=torch.float64)
    opac = torch.ones(2, 3 * n, dtype=torch.float64)
    opac[1, n:] = 0.15
    depths = torch.cat([torch.full((n,), 2.0), torch.full((2 * n,), 0.5)]).double()[None].repeat(2, 1)
    layer_ids = torch.cat([torch.ones(n), torch.zeros(2 * n)]).long()[None].repeat(2, 1).to(DEV)
    args = [t.to(DEV) for t in (means, covs, colors, opac, depths)]
    fns = [
        lambda *a, be=be: rasterize_gaussians(*a, h, w, num_layers=2, layer_ids=layer_ids, backend=be)
        for be in ("torch", "triton")
    ]
    _assert_parity(*fns, args, RAST_NAMES)
    out = rasterize_gaussians(*args, h, w, num_layers=2, layer_ids=layer_ids, backend="triton")
    assert (out["depth"][0, 0, 2:-2, 2:-2] - 0.5).abs().max() < 1e-5
    assert (out["depth"][1, 0, 2:-2, 2:-2] - 0.5).abs().min() > 0.3


@pytest.mark.parametrize("sigma_px", [0.5, 4.0])  # the ends of the range the benchmarks and the issue use
def test_triton_render_defocus_matches_torch_at_sigma_extremes(sigma_px: float) -> None:
    """A near square in front of a far plane (occlusion), B = 2, a 2-image stack, CoC input."""
    b, h, w = 2, 15, 13
    g = torch.Generator().manual_seed(3)
    rgb = torch.rand(b, 3, h, w, generator=g, dtype=torch.float64)
    depth = torch.full((b, 1, h, w), 2.5, dtype=torch.float64)
    depth[..., 4:10, 3:9] = 0.12
    coc = (torch.full((b, 2, 1, h, w), sigma_px / 0.25) * (1 + 0.2 * torch.rand(b, 2, 1, h, w, generator=g))).double()
    opacity = 0.5 + 0.5 * torch.rand(b, 1, h, w, generator=g, dtype=torch.float64)
    focus = torch.tensor([[0.12, 2.5], [0.3, 1.0]], dtype=torch.float64).to(DEV)
    inputs = [t.to(DEV) for t in (rgb, depth, coc, opacity)]

    def fn(r, d, c, o, be):
        return render_defocus(r, d, focus, FOD500, backend=be, coc_px=c, opacity=o, num_layers=6)

    fns = [lambda *a, be=be: fn(*a, be) for be in ("torch", "triton")]
    _assert_parity(*fns, inputs, ("radiance", "depth", "coc", "opacity"))


def test_triton_thin_lens_stack_and_fp32_inputs() -> None:
    """The thin-lens CoC path (gradient through depth into the CoC) with float32 inputs, as in training."""
    b, h, w = 2, 12, 11
    g = torch.Generator().manual_seed(5)
    rgb = torch.rand(b, 3, h, w, generator=g).to(DEV)
    depth = (torch.rand(b, 1, h, w, generator=g) * 2.5 + 0.15).to(DEV)
    focus = torch.tensor([[0.1, 0.7, 1.5], [0.3, 0.15, 1.0]], device=DEV)
    fns = [
        lambda r, d, be=be: render_defocus(r, d, focus, FOD500, backend=be, num_layers=8) for be in ("torch", "triton")
    ]
    ref, g_ref, weights = _run(fns[0], [rgb, depth])
    tri, g_tri, _ = _run(fns[1], [rgb, depth], weights)
    for key in ref:  # float32 on both sides: sums in a different order
        torch.testing.assert_close(tri[key], ref[key], atol=1e-4, rtol=1e-4)
    for gt, gr in zip(g_tri, g_ref):
        torch.testing.assert_close(gt, gr, atol=1e-3 * float(gr.abs().max()), rtol=0)


def test_triton_zero_coc_reproduces_input() -> None:
    rgb = torch.rand(2, 3, 9, 14, device=DEV)
    depth = torch.full((2, 1, 9, 14), 0.7, device=DEV)
    out = render_defocus(rgb, depth, torch.tensor([0.7, 0.7], device=DEV), FOD500, backend="triton")
    torch.testing.assert_close(out["image"], rgb, atol=1e-6, rtol=0)
    torch.testing.assert_close(out["alpha"], torch.ones_like(out["alpha"]))


def test_triton_backend_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_backend("triton", DEV) == "triton"
    assert resolve_backend("auto", torch.device("cpu")) == "torch"  # the interpreter is for tests, not speed
    if DEV.type == "cuda":
        assert resolve_backend("auto", DEV) == "triton"
    # kernels built for the other kind of device are refused with a hint, not run
    from sdgs.render import triton_kernels

    monkeypatch.setattr(triton_kernels, "INTERPRETED", DEV.type == "cuda")
    rasterize_mod.triton_available.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="use backend='torch'"):
            resolve_backend("triton", DEV)
    finally:
        monkeypatch.undo()
        rasterize_mod.triton_available.cache_clear()


COMPILE_FOR_HOPPER = """
import sdgs.render.triton_kernels as tk
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

f, i32, i64 = "*fp32", "*i32", "*i64"
splat = dict(mx_ptr=f, con_ptr=f, nrm_ptr=f, feat_ptr=f, rad_ptr=i32, order_ptr=i32, base_ptr=i64)
scalars = dict(n_gauss="i32", height="i32", width="i32", s2="fp32")
blocks = dict(NC=5, BLOCK_G=tk.BLOCK_G, BLOCK_P=tk.BLOCK_P)
comp = dict(n_pix="i32", hw="i32", eps="fp32")
kernels = {
    tk._splat_fwd: ({**splat, "acc_ptr": f, **scalars}, blocks),
    tk._splat_bwd: ({**splat, "gacc_ptr": f, "grad_ptr": f, **scalars}, blocks),
    tk._composite_fwd: ({"acc_ptr": f, "out_ptr": f, **comp}, dict(K=16, NC=5, BLOCK=tk.BLOCK_PIX)),
    tk._composite_bwd: ({"acc_ptr": f, "out_ptr": f, "gout_ptr": f, "gacc_ptr": f, **comp},
                        dict(K=16, NC=5, BLOCK=tk.BLOCK_PIX)),
}
assert not tk.INTERPRETED
for fn, (sig, consts) in kernels.items():
    sig = {**sig, **{k: "constexpr" for k in consts}}
    src = ASTSource(fn=fn, signature=sig, constexprs={(fn.arg_names.index(k),): v for k, v in consts.items()})
    compiled = triton.compile(src, target=GPUTarget("cuda", 90, 32))
    assert "cubin" in compiled.asm, fn
print("compiled", len(kernels))
"""


def test_triton_kernels_compile_for_a_hopper_gpu(tmp_path) -> None:
    """The interpreter runs the kernels' Python, not Triton's compiler: compile all four for sm_90 (H100/H200)
    down to a cubin with Triton's bundled ptxas, which needs no GPU, so a kernel that only the compiler
    rejects (types, layouts, unsupported ops) fails here too. Fresh cache: a real compile every run."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(PYTHONPATH=str(Path(__file__).resolve().parents[1]), TRITON_CACHE_DIR=str(tmp_path))
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # silences Triton 3.9's notice; fusion is its default
    proc = subprocess.run(
        [sys.executable, "-c", COMPILE_FOR_HOPPER], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and "compiled 4" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]
