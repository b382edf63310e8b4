"""Diffusers pipelines of the pix2gestalt family.

Importing this package registers the pipeline classes in the ``diffusers`` namespace, so that
``DiffusionPipeline.from_pretrained`` resolves the ``_class_name`` of a converted folder.
"""

import diffusers

from .cc_projection import CCProjection
from .pix2gestalt import Pix2GestaltPipeline, Pix2GestaltPipelineOutput

for _cls in (Pix2GestaltPipeline,):
    if not hasattr(diffusers, _cls.__name__):
        setattr(diffusers, _cls.__name__, _cls)

__all__ = ["CCProjection", "Pix2GestaltPipeline", "Pix2GestaltPipelineOutput"]
