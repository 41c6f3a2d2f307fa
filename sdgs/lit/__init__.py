"""Lightning wiring: the module, the shared splatting-stage callback, preview/config callbacks, CLI."""

from sdgs.lit.callbacks import RenderPreviewCallback, RunDirSaveConfig
from sdgs.lit.loggers import RunCSVLogger, SDGSWandbLogger
from sdgs.lit.module import SDGSModule
from sdgs.splatting import GaussianSplattingStage  # re-exported: configs name sdgs.lit.GaussianSplattingStage

__all__ = [
    "GaussianSplattingStage",
    "RenderPreviewCallback",
    "RunCSVLogger",
    "RunDirSaveConfig",
    "SDGSModule",
    "SDGSWandbLogger",
]
