"""The stages a job's settings describe, built one way for every job."""

from __future__ import annotations

import logging

from ..settings import CompletionSettings, ModelSettings, RuntimeSettings

logger = logging.getLogger(__name__)


def load_completer(model: ModelSettings, completion: CompletionSettings, runtime: RuntimeSettings):
    """The :class:`~p2g3d.AmodalCompleter` a job's settings describe; without a model, says once (a warning on
    stderr) that the embedded demonstration model is used."""
    from ..completer import AmodalCompleter
    from ..loading import DEFAULT_MODEL_NOTE

    if model.model is None:
        logger.warning("note: %s", DEFAULT_MODEL_NOTE)

    return AmodalCompleter.from_pretrained(
        model.model, runtime.device, runtime.dtype, model.compile_mode, **vars(completion)
    )


def benchmark_carver(resolution: int = 96, bound: float | None = None):
    """The multi-view reconstructor of the 3D occlusion benchmark and the demo: space carving at ``resolution``
    voxels per side in :data:`~p2g3d.evaluation.occlusion3d.BENCHMARK_BOUNDS`, or in the cube of half side
    ``bound``."""
    from ..evaluation.occlusion3d import BENCHMARK_BOUNDS
    from ..integrations.carving import VisualHullReconstructor

    bounds = BENCHMARK_BOUNDS if bound is None else ((-bound,) * 3, (bound,) * 3)
    return VisualHullReconstructor(resolution=resolution, bounds=bounds)
