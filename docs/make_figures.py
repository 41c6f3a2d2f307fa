"""Regenerate the README figures: ``python docs/make_figures.py`` (CPU, a few seconds)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from datamodules.defocus import synthesize_focal_stack  # noqa: E402
from datamodules.procedural import make_scene, scene_camera  # noqa: E402
from sdgs.optics import FOD500  # noqa: E402
from sdgs.render import render_defocus  # noqa: E402

OUT = Path(__file__).parent


def focal_stack_figure(path: Path = OUT / "focal_stack.png") -> None:
    cam = scene_camera(FOD500, 128)
    scene = make_scene(11, 128, cam)
    focus = torch.tensor(cam.focus_distances_m)
    rgb, depth = scene["rgb"][None], scene["depth"][None]
    rendered = render_defocus(rgb, depth, focus[None], cam, backend="torch")["image"][0]
    synth = synthesize_focal_stack(rgb, depth, focus, cam)[0]
    fig, axes = plt.subplots(2, 7, figsize=(15, 4.6))
    for row, (stack, name) in enumerate(((rendered, "Gaussian-splatting renderer"), (synth, "layered synthesis"))):
        axes[row, 0].imshow(rgb[0].permute(1, 2, 0))
        axes[row, 0].set_title("sharp radiance")
        im = axes[row, 1].imshow(depth[0, 0], cmap="magma_r")
        axes[row, 1].set_title("depth (m)")
        fig.colorbar(im, ax=axes[row, 1], fraction=0.046)
        for k, f in enumerate(cam.focus_distances_m):
            axes[row, k + 2].imshow(stack[k].clamp(0, 1).permute(1, 2, 0))
            axes[row, k + 2].set_title(f"focus {f} m")
        axes[row, 0].set_ylabel(name)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Procedural scene, FoD500 optics (f = 2.9 mm, N = 1): rendered focal stack", y=1.0)
    fig.tight_layout()
    fig.savefig(path, dpi=80, bbox_inches="tight")
    print(f"wrote {path}")


def prediction_figure(ckpt: str, path: Path = OUT / "prediction.png", n: int = 3) -> None:
    """Held-out procedural scenes: one defocused input → predicted depth → ground truth."""
    from datamodules import SyntheticDataModule
    from sdgs.lit import SDGSModule

    model = SDGSModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    dm = SyntheticDataModule(num_test=n, size=128)
    test = dm.dataset("test")
    fig, axes = plt.subplots(n, 4, figsize=(10, 2.6 * n), squeeze=False)
    for r in range(n):
        item = test.load(r)
        k = 2
        cam = {key: v[None] for key, v in item["camera"].items()}
        with torch.no_grad():
            out = model.predict_depth(item["stack"][k][None], item["focus_distance"][k][None], cam)
        gt = item["depth"][0]
        panels = [
            (item["stack"][k].permute(1, 2, 0), f"input (focus {float(item['focus_distance'][k]):.2f} m)", None),
            (out["z0"][0, 0], "SDNet z0", "magma_r"),
            (out["depth"][0, 0], "DepthNet (ours)", "magma_r"),
            (gt, "ground truth", "magma_r"),
        ]
        for c, (img, title, cmap) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img, cmap=cmap, vmin=0 if cmap else None, vmax=float(gt.max()) if cmap else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title)
    fig.suptitle("Depth from ONE defocused image (self-supervised quickstart, held-out procedural scenes)")
    fig.tight_layout()
    fig.savefig(path, dpi=70, bbox_inches="tight")
    print(f"wrote {path}")


if __name__ == "__main__":
    import sys

    focal_stack_figure()
    if len(sys.argv) > 1:
        prediction_figure(sys.argv[1])
