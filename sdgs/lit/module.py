"""One LightningModule for both networks, with a stage switch.

* ``stage="joint"`` (default, one command): SDNet and DepthNet train together; DepthNet sees SDNet's
  (detached) defocus map and its depth z0.
* ``stage="sdnet"``: SDNet only.
* ``stage="depthnet"``: DepthNet only, SDNet loaded from ``sdnet_ckpt`` and frozen.

Self-supervised training (default) reads the splatting stage's fields that
:class:`~sdgs.splatting.GaussianSplattingStage` attaches (``coc_targets``, ``confidence``,
``initial_depth``, ``radiance``) and never the ground-truth depth; ``supervised=True`` swaps the targets
for ground truth (the upper-bound row only). Evaluation always sees ONE defocused image per sample.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from torch import Tensor

from sdgs import losses
from sdgs.batch import DataError
from sdgs.metrics import DFV_CLIP_M, DepthMetrics, per_image_depth_errors
from sdgs.models import DepthNet, SDNet
from sdgs.optics import Camera, batched_camera, signed_coc_px
from sdgs.render import DefocusRenderer

__all__ = ["SDGSModule", "read_checkpoint"]

log = logging.getLogger(__name__)

Stage = Literal["joint", "sdnet", "depthnet"]


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The contents of an sdgs checkpoint (tensors memory-mapped, on the CPU), or a one-line :class:`DataError`.

    Loads with ``weights_only=True`` as LightningCLI does, and requires SDNet weights (``sdnet.*`` keys), so a
    truncated file, random bytes or another project's checkpoint fails here with a message naming the file
    instead of deep inside torch (whose unpickling errors suggest ``weights_only=False``: wrong advice here).
    """
    path = Path(path)
    fix = "use a .ckpt that `sdgs fit` wrote (runs/<experiment>/checkpoints/)"
    if not path.is_file():
        raise DataError(f"checkpoint not found: {path}; {fix}, e.g. after `make quickstart-ckpt`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except OSError as err:
        raise DataError(f"cannot read checkpoint {path}: {err.strerror or err}") from err
    except Exception as err:  # truncated zip, random bytes, pickles of other objects: many error types
        raise DataError(f"{path} is not an sdgs checkpoint (corrupt or another file); {fix}") from err
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not any(str(k).startswith("sdnet.") for k in state):
        raise DataError(f"{path} is not an sdgs checkpoint (corrupt or another file): no SDNet weights; {fix}")
    return ckpt


class SDGSModule(L.LightningModule):
    """SDNet + DepthNet training and single-image evaluation.

    Args:
        stage: ``joint``, ``sdnet`` or ``depthnet`` (module docstring).
        sdnet_width, sdnet_depth, depthnet_width, depthnet_depth: U-Net sizes.
        blur_inputs: SDNet also sees local sharpness-vs-contrast features (:func:`sdgs.models.blur_features`).
        net_stride: both networks run at ``1/net_stride`` of the image resolution (blur features computed at
            full resolution first): whole real photos at a CPU's cost (``lightning_configs/dfd_indoor.yaml``).
        row_input: both networks also see the image row (a position prior; full-image training only).
        reblur_inputs: SDNet also sees gradient ratios after re-blurring (:func:`sdgs.models.reblur_features`).
        lr, weight_decay: AdamW settings; cosine decay over the run.
        defocus_weight: SDNet's term to the splatting targets, in ``target_space``.
        target_space: the depth terms' loss, for both SDNet and DepthNet. ``"log_depth"`` = L1 of log inverse
            depth (the space AbsRel and δ live in); ``"abs_rel"`` = AbsRel itself, ``|z - z*| / z*`` (its
            minimiser errs near, as AbsRel rewards); ``"coc"`` = SDNet signed-CoC L1 (px) and DepthNet relative
            inverse-depth L1. None (default): ``log_depth`` for the splatting targets, ``abs_rel`` with
            ``supervised``: the better loss of each in ``make bench-train`` (experiments
            ``procedural-abs-rel-loss`` and ``procedural-supervised-log-depth``, docs/results.md).
        loss_far_m: with ``log_depth`` or ``abs_rel``, clip depths beyond this (m) in the loss, as a clipping
            metric protocol does (DFV: 1.5 m); None = no clip.
        use_confidence: weight the self-supervised terms by the splatting stage's confidence (few pixels, mostly
            textured near ones). It trades δ1 and RMSE for near AbsRel and holds on unseen textures
            (experiments ``procedural`` vs ``procedural-no-confidence``; docs/method.md "Losses").
            Ground truth (``supervised``) weighs every valid pixel.
        siamese_weight: agreement of the inverse depths two branches imply (<= 0.1: alone it pushes
            towards a focus-independent output).
        blur_weight: re-render a partner image from the splatting radiance and SDNet's depth; photometric.
        depth_weight: DepthNet's term to the splatting initial depth, in ``target_space``.
        depth_render_weight: the same re-render loss from DepthNet's depth.
        smooth_weight: edge-aware smoothness of DepthNet's inverse depth.
        render_every: compute the rendered losses every N steps (rendering dominates a step on CPU).
        ssim_weight: SSIM share of the photometric loss.
        supervised: use ground-truth depth as targets (upper bound only; its loss: ``target_space``).
        sdnet_ckpt: checkpoint with SDNet weights (required for ``stage="depthnet"``).
        metric_protocol: ``dfv`` (FoD500) or ``eigen`` (NYUv2).
        near_max: DFV "near pixels" threshold (m).
        eigen_crop, log10: Eigen protocol options.
        test_focus_index: evaluate this image of each stack only; None = every index, averaged.
        train_focus_indices: train on these images of each stack only (the Siamese pair is drawn among them;
            one index = one image per scene, no pair); None = every image. The no-defocus control of
            ``bench/real.py`` trains on the appended real photo alone.
        predict_smooth_px: Gaussian σ (px at the camera's width) that :func:`sdgs.predict.predict_photo` (``sdgs
            predict``, ``make bench-real``) applies to a photo's log depth; training and validation never use it.
            For real photos, where the network's depth inside a room follows texture more than blur
            (``lightning_configs/dfd_indoor.yaml``).
        channels_last: keep the networks' conv weights (and so their activations) in channels-last memory
            format: faster convolutions on tensor-core GPUs, esp. with bf16 (``trainer.precision: bf16-mixed``).
            No effect on the numbers.

    Mixed precision (``trainer.precision: bf16-mixed``): the networks' convolutions run in bf16; their depth
    heads, every loss term and the renderer run in fp32 (the loss-term code below runs with autocast off, the
    renderer casts itself up: :func:`sdgs.render.rasterize.full_precision`).
    """

    def __init__(
        self,
        stage: Stage = "joint",
        sdnet_width: int = 16,
        sdnet_depth: int = 3,
        depthnet_width: int = 16,
        depthnet_depth: int = 3,
        blur_inputs: bool = True,
        net_stride: int = 1,
        row_input: bool = False,
        reblur_inputs: bool = False,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        defocus_weight: float = 1.0,
        target_space: Literal["log_depth", "abs_rel", "coc"] | None = None,
        loss_far_m: float | None = None,
        use_confidence: bool = True,
        siamese_weight: float = 0.05,
        blur_weight: float = 0.5,
        depth_weight: float = 1.0,
        depth_render_weight: float = 0.5,
        smooth_weight: float = 0.02,
        render_every: int = 2,
        ssim_weight: float = 0.85,
        supervised: bool = False,
        sdnet_ckpt: str | None = None,
        metric_protocol: Literal["dfv", "eigen"] = "dfv",
        near_max: float = DFV_CLIP_M,
        eigen_crop: bool = False,
        log10: bool = False,
        test_focus_index: int | None = None,
        train_focus_indices: list[int] | None = None,
        channels_last: bool = False,
        predict_smooth_px: float = 0.0,
    ) -> None:
        super().__init__()
        if stage not in ("joint", "sdnet", "depthnet"):
            raise ValueError(f"model.stage must be 'joint', 'sdnet' or 'depthnet', got {stage!r}")
        if target_space is not None and target_space not in losses.DEPTH_LOSSES and target_space != "coc":
            raise ValueError(f"model.target_space must be 'log_depth', 'abs_rel', 'coc' or null, got {target_space!r}")
        if not predict_smooth_px >= 0:
            raise ValueError(f"model.predict_smooth_px must be >= 0 (a Gaussian sigma in px), got {predict_smooth_px}")
        self.save_hyperparameters()
        # the default resolved: hparams (and so checkpoints) record the loss actually used
        self.hparams["target_space"] = target_space or ("abs_rel" if supervised else "log_depth")
        self.sdnet = SDNet(
            sdnet_width, sdnet_depth, blur_inputs, stride=net_stride, row_input=row_input, reblur_inputs=reblur_inputs
        )
        self.depthnet = DepthNet(depthnet_width, depthnet_depth, stride=net_stride, row_input=row_input)
        if channels_last:
            # 4-D weights only; .to(device) and load_state_dict keep the format, and a conv with channels-last
            # weights returns channels-last activations, so the whole U-Net follows
            self.sdnet.to(memory_format=torch.channels_last)
            self.depthnet.to(memory_format=torch.channels_last)
        self.renderer: DefocusRenderer | None = None
        # one collection per split: refined depth on all / near pixels, and z0; test adds one per focus index
        self.metrics = torch.nn.ModuleDict({split: self._metric_collection() for split in ("val", "test")})
        self.test_rows: list[dict[str, float]] = []  # per sample and focus index (``sdgs test`` writes a CSV)
        self.last_preview: dict[str, Tensor] | None = None
        self._fit_t0: float | None = None  # wall clock at the start of this fit (or resume)
        if stage == "depthnet":
            if not sdnet_ckpt:
                raise ValueError(
                    "model.stage='depthnet' trains DepthNet on a frozen SDNet: set model.sdnet_ckpt to a checkpoint "
                    "of an 'sdnet' or 'joint' run (e.g. runs/<exp>/checkpoints/last.ckpt)"
                )
            self.load_sdnet(sdnet_ckpt)
            self.sdnet.requires_grad_(False)

    # ------------------------------------------------------------------ plumbing
    @property
    def needs_splatting(self) -> bool:
        """Whether training reads the splatting stage's fields (the supervised upper bound without rendered
        losses reads none)."""
        hp = self.hparams
        return not hp.supervised or hp.blur_weight > 0 or hp.depth_render_weight > 0

    def attach_renderer(self, renderer: DefocusRenderer) -> None:
        """Called by :class:`GaussianSplattingStage`: share its renderer for the rendered losses."""
        self.renderer = renderer

    def load_sdnet(self, path: str) -> None:
        state = read_checkpoint(path)
        weights = {k[len("sdnet.") :]: v for k, v in state["state_dict"].items() if k.startswith("sdnet.")}
        try:
            self.sdnet.load_state_dict(weights)
        except RuntimeError as err:
            raise ValueError(f"{path}: SDNet weights do not fit this model (check sdnet_width/depth): {err}") from err

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        mine, theirs = self.state_dict(), checkpoint.get("state_dict", {})
        missing, extra = sorted(set(mine) - set(theirs))[:3], sorted(set(theirs) - set(mine))[:3]
        shapes = [k for k in set(mine) & set(theirs) if tuple(mine[k].shape) != tuple(theirs[k].shape)][:3]
        if missing or extra or shapes:
            raise ValueError(
                f"checkpoint does not match SDGSModule as configured (missing {missing}, unexpected {extra}, "
                f"other shapes {shapes}): pass the config the checkpoint was trained with (e.g. its config.yaml)"
            )

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = self.trainer.estimated_stepping_batches
        if math.isinf(total):  # bounded by trainer.max_time alone: no length to anneal over
            log.warning("no max_steps / max_epochs: training at the constant learning rate %g", self.hparams.lr)
            return opt
        total = max(1, int(total))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=self.hparams.lr * 0.05)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    @contextlib.contextmanager
    def _fp32(self) -> Iterator[None]:
        """Autocast off: loss terms in fp32 whatever ``trainer.precision`` (bf16 SSIM windows and sums of
        small per-pixel errors lose the differences the losses are about)."""
        with torch.autocast(self.device.type, enabled=False):
            yield

    # ------------------------------------------------------------------ inference
    def predict_depth(self, image: Tensor, focus_m: Tensor, camera: Camera | dict) -> dict[str, Tensor]:
        """Depth from ONE defocused image: SDNet (defocus map and its depth z0) → DepthNet.

        z0 is SDNet's own depth: SDNet predicts a bounded inverse depth and derives its signed CoC through
        the thin lens, so inverting the lens again would be the identity.

        Args: ``image`` (B,3,H,W) in [0,1], ``focus_m`` (B,), ``camera`` (batched Camera or batch dict).
        Returns: ``signed_coc``, ``defocus``, ``z0``, ``depth`` — each (B,1,H,W).
        """
        cam = batched_camera(camera, 4)
        sd = self.sdnet(image, focus_m, cam)
        out = {"signed_coc": sd["signed_coc"], "defocus": sd["defocus"], "z0": sd["depth"], "depth": sd["depth"]}
        if self.hparams.stage != "sdnet":
            out["depth"] = self.depthnet(image, sd["defocus"].detach(), focus_m, sd["depth"].detach(), cam)["depth"]
        return out

    @torch.no_grad()
    def preview(
        self,
        image: Tensor,
        focus_m: Tensor,
        camera: dict,
        gt: Tensor,
        radiance: Tensor | None = None,
        out: dict[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """The tensors of a preview grid (:func:`~sdgs.lit.callbacks.save_preview_grid`) for one image per
        sample: input, predicted defocus, z0, refined depth, ground truth and, given the splatting radiance,
        the image re-rendered at the predicted depth. ``out``: :meth:`predict_depth` of ``image`` if the caller
        has it already."""
        out = self.predict_depth(image, focus_m, camera) if out is None else out
        grid = {"image": image, "defocus": out["defocus"], "z0": out["z0"], "depth": out["depth"], "gt": gt}
        if radiance is not None and self.renderer is not None:
            grid["rendered"] = self.renderer(radiance, out["depth"], focus_m, camera=camera)["image"]
        return {k: v.detach() for k, v in grid.items()}

    def forward(self, image: Tensor, focus_m: Tensor, camera: Camera | dict) -> Tensor:
        return self.predict_depth(image, focus_m, camera)["depth"]

    # ------------------------------------------------------------------ training
    def _targets(self, batch: dict[str, Any], cam: Camera) -> dict[str, Tensor]:
        """Depth targets (``inv_depth``, ``coc`` per stack image) and their pixel weights (``confidence``)."""
        if self.hparams.supervised:
            gt = batch["depth"]
            valid = (gt > 0).to(gt)
            safe = torch.where(gt > 0, gt, torch.ones_like(gt))
            s = batch["focus_distance"].shape[1]
            coc = torch.stack(
                [signed_coc_px(safe, batch["focus_distance"][:, k].view(-1, 1, 1, 1), cam) for k in range(s)], 1
            )
            return {"coc": coc, "confidence": valid, "inv_depth": 1.0 / safe}
        missing = [k for k in ("coc_targets", "confidence", "initial_depth") if k not in batch]
        if missing:
            raise RuntimeError(
                f"self-supervised training needs the splatting stage's {missing}: add "
                "sdgs.lit.GaussianSplattingStage to the trainer (the `splat` key of lightning_configs/base.yaml) "
                "or set model.supervised=true"
            )
        conf = batch["confidence"]
        return {
            "coc": batch["coc_targets"],
            "confidence": conf if self.hparams.use_confidence else torch.ones_like(conf),
            "inv_depth": 1.0 / batch["initial_depth"],
        }

    def _render_loss(self, batch: dict[str, Any], depth: Tensor, b_idx: Tensor) -> Tensor:
        """Re-render image ``b`` of each stack from the splatting radiance at ``depth``; photometric vs real."""
        rows = torch.arange(depth.shape[0], device=depth.device)
        rendered = self.renderer(
            batch["radiance"], depth, batch["focus_distance"][rows, b_idx], camera=batch["camera"]
        )["image"]
        # a capture saturates at 1; with the photometric gain the radiance can exceed it where the stack was
        # clipped (a no-op without that augmentation: the render of radiance in [0, 1] stays in [0, 1])
        return losses.photometric(rendered.clamp(0, 1), batch["stack"][rows, b_idx], self.hparams.ssim_weight)

    def _check_finite(self, terms: dict[str, Tensor]) -> None:
        for name, value in terms.items():
            if not torch.isfinite(value):
                raise FloatingPointError(
                    f"loss term '{name}' is {float(value)} at step {self.global_step}; stopping. The last good "
                    "state is saved as <run>/checkpoints/last.ckpt; lower model.lr or check the inputs"
                )

    def _siamese_pair(self, bsz: int, s: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """A random pair of distinct stack indices per sample ``(B,), (B,)``: the two Siamese branches.

        Drawn from the step number, so a resumed run picks the same pairs as an uninterrupted one.
        """
        gen = torch.Generator().manual_seed(1_000_003 * int(self.global_step) + 17)
        allowed = self.hparams.train_focus_indices
        if allowed is not None:
            if not allowed or not all(-s <= k < s for k in allowed):
                raise ValueError(f"model.train_focus_indices={allowed} but stacks have {s} images")
            pool = torch.tensor(sorted({k % s for k in allowed}))
            a_pos = torch.randint(0, len(pool), (bsz,), generator=gen)
            b_pos = (a_pos + torch.randint(1, len(pool), (bsz,), generator=gen)) % len(pool) if len(pool) > 1 else a_pos
            return pool[a_pos].to(device), pool[b_pos].to(device)
        a_idx = torch.randint(0, s, (bsz,), generator=gen)
        b_idx = (a_idx + torch.randint(1, s, (bsz,), generator=gen)) % s
        return a_idx.to(device), b_idx.to(device)

    def _sdnet_terms(
        self, batch: dict[str, Any], targets: dict[str, Tensor], a_idx: Tensor, b_idx: Tensor, render: bool
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """SDNet's terms (defocus, Siamese consistency, blur re-render) and branch A's outputs."""
        hp = self.hparams
        stack, focus = batch["stack"], batch["focus_distance"]
        bsz = focus.shape[0]
        rows = torch.arange(bsz, device=focus.device)
        if bool((a_idx == b_idx).all()):  # one training image per stack (train_focus_indices): one pass
            out_a = out_b = self.sdnet(stack[rows, a_idx], focus[rows, a_idx], batched_camera(batch["camera"], 4))
        else:  # both Siamese branches in one batched pass through the shared weights
            both = self.sdnet(
                torch.cat([stack[rows, a_idx], stack[rows, b_idx]]),
                torch.cat([focus[rows, a_idx], focus[rows, b_idx]]),
                batched_camera({k: torch.cat([v, v]) for k, v in batch["camera"].items()}, 4),
            )
            out_a = {k: v[:bsz] for k, v in both.items()}
            out_b = {k: v[bsz:] for k, v in both.items()}
        conf = targets["confidence"]
        with self._fp32():
            if hp.target_space in losses.DEPTH_LOSSES:
                loss, far = losses.DEPTH_LOSSES[hp.target_space], hp.loss_far_m
                defocus = loss(out_a["inv_depth"], targets["inv_depth"], conf, far)
                defocus = defocus + loss(out_b["inv_depth"], targets["inv_depth"], conf, far)
            else:
                defocus = losses.confidence_l1(out_a["signed_coc"], targets["coc"][rows, a_idx], conf)
                defocus = defocus + losses.confidence_l1(out_b["signed_coc"], targets["coc"][rows, b_idx], conf)
            terms = {
                "defocus": hp.defocus_weight * 0.5 * defocus,
                "siamese": hp.siamese_weight * losses.siamese_consistency(out_a["inv_depth"], out_b["inv_depth"]),
            }
            self._check_finite(terms)  # before rendering: a NaN depth must be reported as its loss term
            if render and hp.blur_weight > 0:
                terms["blur"] = hp.blur_weight * self._render_loss(batch, out_a["depth"], b_idx)
        return terms, out_a

    def _depthnet_terms(
        self, batch: dict[str, Any], targets: dict[str, Tensor], sd: dict[str, Tensor], a_idx: Tensor,
        b_idx: Tensor, render: bool,
    ) -> dict[str, Tensor]:  # fmt: skip
        """DepthNet's terms (inverse depth to the targets, smoothness, re-render) on branch A's image."""
        hp = self.hparams
        rows = torch.arange(a_idx.shape[0], device=a_idx.device)
        image, focus = batch["stack"][rows, a_idx], batch["focus_distance"][rows, a_idx]
        cam = batched_camera(batch["camera"], 4)
        ref = self.depthnet(image, sd["defocus"].detach(), focus, sd["depth"].detach(), cam)
        with self._fp32():
            if hp.target_space in losses.DEPTH_LOSSES:
                loss = losses.DEPTH_LOSSES[hp.target_space]
                depth = loss(ref["inv_depth"], targets["inv_depth"], targets["confidence"], hp.loss_far_m)
            else:
                depth = losses.confidence_l1(ref["inv_depth"], targets["inv_depth"], targets["confidence"])
                depth = depth / targets["inv_depth"].mean().clamp_min(1e-6)
            terms = {
                "depth": hp.depth_weight * depth,
                "smooth": hp.smooth_weight * losses.smoothness(ref["inv_depth"], image),
            }
            self._check_finite(terms)
            if render and hp.depth_render_weight > 0:
                terms["depth_render"] = hp.depth_render_weight * self._render_loss(batch, ref["depth"], b_idx)
        return terms

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        hp = self.hparams
        focus = batch["focus_distance"]
        bsz, s = focus.shape
        if s < 2 and not hp.supervised:
            raise ValueError("self-supervised training needs focal stacks of at least 2 images (Siamese pairs)")
        targets = self._targets(batch, batched_camera(batch["camera"], 4))
        a_idx, b_idx = self._siamese_pair(bsz, s, focus.device)
        render = self.renderer is not None and "radiance" in batch and self.global_step % max(1, hp.render_every) == 0
        terms: dict[str, Tensor] = {}
        if hp.stage == "depthnet":  # SDNet frozen: its outputs only
            rows = torch.arange(bsz, device=focus.device)
            with torch.no_grad():
                sd = self.sdnet(batch["stack"][rows, a_idx], focus[rows, a_idx], batched_camera(batch["camera"], 4))
        else:
            sd_terms, sd = self._sdnet_terms(batch, targets, a_idx, b_idx, render)
            terms.update(sd_terms)
        if hp.stage != "sdnet":
            terms.update(self._depthnet_terms(batch, targets, sd, a_idx, b_idx, render))
        self._check_finite(terms)
        loss = torch.stack(list(terms.values())).sum()
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()}, batch_size=bsz)
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=bsz)
        return loss

    # ------------------------------------------------------------------ evaluation
    def _indices(self, s: int) -> list[int]:
        k = self.hparams.test_focus_index
        if k is None:
            return list(range(s))
        if not 0 <= k < s:
            raise ValueError(f"model.test_focus_index={k} but stacks have {s} images")
        return [k]

    def _metric_collection(self) -> torch.nn.ModuleDict:
        """``{"all", "near" (DFV only), "z0"}`` :class:`DepthMetrics` of one split."""
        metrics = {"all": self._depth_metric(), "z0": self._depth_metric()}
        if self.hparams.metric_protocol == "dfv":
            metrics["near"] = self._depth_metric(near_max=self.hparams.near_max)
        return torch.nn.ModuleDict(metrics)

    def _depth_metric(self, near_max: float | None = None) -> DepthMetrics:
        hp = self.hparams
        return DepthMetrics(hp.metric_protocol, near_max=near_max, eigen_crop=hp.eigen_crop, log10=hp.log10)

    @staticmethod
    def _prefix(split: str, name: str) -> str:
        return f"{split}/" if name == "all" else f"{split}/{name}/"

    def _evaluate(self, batch: dict[str, Any], split: str) -> None:
        stack, focus, gt = batch["stack"], batch["focus_distance"], batch["depth"]
        metrics = self.metrics[split]
        indices = self._indices(stack.shape[1])
        for k in indices:
            out = self.predict_depth(stack[:, k], focus[:, k], batch["camera"])
            for name, metric in metrics.items():
                if not name.startswith("k"):  # per-index metrics ("k0", ...) are updated below
                    metric.update(out["z0"] if name == "z0" else out["depth"], gt)
            if split == "test":
                key = f"k{k}"
                if key not in metrics:
                    metrics[key] = self._depth_metric().to(self.device)
                metrics[key].update(out["depth"], gt)
                self._record_rows(batch, k, out["depth"])
            if split == "val" and k == indices[0]:
                self.last_preview = self.preview(
                    stack[:, k], focus[:, k], batch["camera"], gt, batch.get("radiance"), out=out
                )

    def _record_rows(self, batch: dict[str, Any], k: int, depth: Tensor) -> None:
        """Per-sample errors of focus index ``k`` (the rows of ``test_samples.csv``)."""
        hp = self.hparams
        kw = {"eigen_crop": hp.eigen_crop, "log10": hp.log10}
        gt = batch["depth"]
        values, has = per_image_depth_errors(depth, gt, hp.metric_protocol, **kw)
        near = None
        if hp.metric_protocol == "dfv":
            near = per_image_depth_errors(depth, gt, "dfv", near_max=hp.near_max)[0]
        for i in range(gt.shape[0]):
            row = {"index": int(batch["index"][i]), "focus_index": k, "focus_m": float(batch["focus_distance"][i, k])}
            row.update({m: float(values[m][i]) if has[i] else float("nan") for m in ("abs_rel", "rmse", "delta1")})
            if near is not None:
                row["near_abs_rel"] = float(near["abs_rel"][i])
            self.test_rows.append(row)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_test_epoch_start(self) -> None:
        self.test_rows = []

    def _log_metrics(self, split: str) -> None:
        for name, metric in self.metrics[split].items():
            if float(metric.images) > 0 or torch.distributed.is_initialized():
                self.log_dict({self._prefix(split, name) + k: v for k, v in metric.compute().items()})
            metric.reset()

    def on_fit_start(self) -> None:
        self._fit_t0 = time.perf_counter()

    def on_fit_end(self) -> None:
        self._fit_t0 = None  # a later trainer.validate() is not part of the fit

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")
        if not self.trainer.sanity_checking and self._fit_t0 is not None:
            # wall seconds since this fit (or resume) started: the time axis of the learning curves
            self.log("time/fit_seconds", time.perf_counter() - self._fit_t0)

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[list[dict]] = [[] for _ in range(torch.distributed.get_world_size())]
            torch.distributed.all_gather_object(gathered, self.test_rows)
            # DistributedSampler pads with repeated samples: keep one row per (sample, index)
            unique = {(r["index"], r["focus_index"]): r for rows in gathered for r in rows}
            self.test_rows = [unique[key] for key in sorted(unique)]

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor]:
        k = self.hparams.test_focus_index or 0
        out = self.predict_depth(batch["stack"][:, k], batch["focus_distance"][:, k], batch["camera"])
        return {"depth": out["depth"], "z0": out["z0"], "defocus": out["defocus"], "index": batch["index"]}
