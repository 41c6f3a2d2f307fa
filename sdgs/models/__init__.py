"""Networks: SDNet (signed CoC / defocus map from one defocused image) and DepthNet (refinement)."""

from sdgs.models.sdnet import DepthNet, SDNet, blur_features, bounded_inverse_depth, focus_plane, reblur_features
from sdgs.models.unet import UNet

__all__ = ["DepthNet", "SDNet", "UNet", "blur_features", "bounded_inverse_depth", "focus_plane", "reblur_features"]
