"""p2g3d: occlusion-robust front end for 3D reconstruction (pix2gestalt amodal completion, diffusers-native).

Public names are imported lazily (PEP 562): ``import p2g3d`` and ``import p2g3d.cameras`` load neither torch nor
diffusers; ``from p2g3d import AmodalCompleter`` loads what the completer needs.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "AmodalCompleter": "p2g3d.completer",
    "CompletionSettings": "p2g3d.settings",
    "MultiViewCompleter": "p2g3d.fusion",
    "SilhouetteFusion": "p2g3d.fusion",
    "VoxelGrid": "p2g3d.fusion",
    "NovelViewGenerator": "p2g3d.novel_views",
    "NovelViewSettings": "p2g3d.settings",
    "AmodalObject": "p2g3d.types",
    "MaskedView": "p2g3d.types",
    "Camera": "p2g3d.cameras",
    "CCProjection": "p2g3d.pipelines",
    "ImagePipelineOutput": "p2g3d.pipelines",
    "OfficialDDIMScheduler": "p2g3d.pipelines",
    "Pix2GestaltPipeline": "p2g3d.pipelines",
    "Pix2GestaltPipelineOutput": "p2g3d.pipelines",
    "Zero123Pipeline": "p2g3d.pipelines",
    "load_image": "p2g3d.io",
    "load_mask": "p2g3d.io",
    "export_mesh": "p2g3d.meshes",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'p2g3d' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
