"""Diffusers pipelines of the pix2gestalt family.

Load converted folders with ``Pix2GestaltPipeline.from_pretrained`` / ``Zero123Pipeline.from_pretrained``; the
``diffusers`` namespace is left as it is.
"""

from .base import ImagePipelineOutput
from .cc_projection import CCProjection
from .official_ddim import OfficialDDIMScheduler
from .pix2gestalt import Pix2GestaltPipeline, Pix2GestaltPipelineOutput
from .zero123 import Zero123Pipeline

__all__ = [
    "CCProjection",
    "ImagePipelineOutput",
    "OfficialDDIMScheduler",
    "Pix2GestaltPipeline",
    "Pix2GestaltPipelineOutput",
    "Zero123Pipeline",
]
