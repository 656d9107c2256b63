"""The neural networks of the pipeline, one module each, named as in the released weights."""

from .alignment import AlignmentVAE, AutoencoderConfig
from .shading import ShadingGenerator

__all__ = ["AlignmentVAE", "AutoencoderConfig", "ShadingGenerator"]
