"""Diffusers pipelines of the pix2gestalt family.

Importing this package registers the pipeline classes in the ``diffusers`` namespace, so that
``DiffusionPipeline.from_pretrained`` resolves the ``_class_name`` of a converted folder.
"""

import diffusers

from .base import ImagePipelineOutput
from .cc_projection import CCProjection
from .pix2gestalt import Pix2GestaltPipeline, Pix2GestaltPipelineOutput
from .zero123 import Zero123Pipeline

for _cls in (Pix2GestaltPipeline, Zero123Pipeline):
    if not hasattr(diffusers, _cls.__name__):
        setattr(diffusers, _cls.__name__, _cls)

__all__ = ["CCProjection", "ImagePipelineOutput", "Pix2GestaltPipeline", "Pix2GestaltPipelineOutput", "Zero123Pipeline"]
