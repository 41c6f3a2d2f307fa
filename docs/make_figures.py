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


if __name__ == "__main__":
    focal_stack_figure()
