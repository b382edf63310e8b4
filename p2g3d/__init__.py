"""p2g3d: occlusion-robust front end for 3D reconstruction (pix2gestalt amodal completion, diffusers-native)."""

__version__ = "0.1.0"

from .pipelines import CCProjection, Pix2GestaltPipeline, Pix2GestaltPipelineOutput  # noqa: E402

__all__ = ["CCProjection", "Pix2GestaltPipeline", "Pix2GestaltPipelineOutput", "__version__"]
