"""Amodal completion over a dataset (``p2g3d batch``): resumable, one bad item never stops the run, on an engine
of the user's choice. In three parts: :mod:`.inputs` (the readers), :mod:`.run` (the resumable run and its
records), :mod:`.engines` (in-process, accelerate, Ray)."""

from .engines import ENGINES, run_batch
from .inputs import BatchItem, load_item, read_items
from .job import BatchJob, run_batch_job
from .run import BatchRun, coco_annotations

__all__ = [
    "ENGINES",
    "BatchItem",
    "BatchJob",
    "BatchRun",
    "coco_annotations",
    "load_item",
    "read_items",
    "run_batch",
    "run_batch_job",
]
