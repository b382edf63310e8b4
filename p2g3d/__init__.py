"""p2g3d: occlusion-robust front end for 3D reconstruction (pix2gestalt amodal completion, diffusers-native)."""

__version__ = "0.1.0"

from .pipelines import (  # noqa: E402
    CCProjection,
    ImagePipelineOutput,
    Pix2GestaltPipeline,
    Pix2GestaltPipelineOutput,
    Zero123Pipeline,
)

__all__ = [
    "CCProjection", "ImagePipelineOutput", "Pix2GestaltPipeline", "Pix2GestaltPipelineOutput", "Zero123Pipeline",
    "__version__",
]  # fmt: skip
