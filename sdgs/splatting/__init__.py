"""The Gaussian-splatting stage, in one home: it fits the Gaussians of each training scene to its whole
focal stack (analysis by synthesis) and hands the result to the networks.

* :mod:`~sdgs.splatting.fit` — :func:`fit_gaussians` (plane-sweep initialisation, refinement through the
  renderer, confidence) and its :class:`SplatFitConfig` / :class:`SplatFit`;
* :mod:`~sdgs.splatting.cache` — :class:`SplatCache`, the atomic on-disk cache of fits;
* :mod:`~sdgs.splatting.stage` — :class:`GaussianSplattingStage`, the shared Lightning callback that attaches
  fits to batches, and :func:`fit_and_cache`.

The renderer it fits through is :mod:`sdgs.render`. The command that fills the cache ahead of training,
``sdgs splat``, belongs to the command-line layer (:mod:`sdgs.cli.splat`).
"""

from sdgs.splatting.cache import SplatCache
from sdgs.splatting.fit import SplatFit, SplatFitConfig, fit_gaussians
from sdgs.splatting.stage import GaussianSplattingStage, fit_and_cache, fit_batch

__all__ = [
    "GaussianSplattingStage",
    "SplatCache",
    "SplatFit",
    "SplatFitConfig",
    "fit_and_cache",
    "fit_batch",
    "fit_gaussians",
]
