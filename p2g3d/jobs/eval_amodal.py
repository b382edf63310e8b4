"""``p2g3d eval-amodal``: amodal mIoU of a model on a dataset folder or a COCO-style annotation file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..settings import CompletionSettings, ModelSettings, RuntimeSettings, nested, option
from ..validation import check_number


@dataclass(frozen=True)
class EvalAmodalJob:
    """Settings of :func:`run_eval_amodal` (the ``p2g3d eval-amodal`` options): exactly one of ``data`` and
    ``cocoa`` (with ``images``)."""

    data: Path | None = option(None, "--data", "pix2gestalt-format dataset folder", type=Path)
    cocoa: Path | None = option(None, "--cocoa", "COCO-style annotation file (segmentation + inmodal_seg)", type=Path)
    images: Path | None = option(None, "--images", "image folder of --cocoa", type=Path)
    limit: int | None = option(None, "--limit", "evaluate at most this many objects")
    group_by: str | None = option(None, "--group-by", "also report each value of this sample factor (e.g. held_out)")
    output: Path | None = option(None, "--output", "also write the JSON here", type=Path)
    model: ModelSettings = nested(ModelSettings)
    completion: CompletionSettings = nested(CompletionSettings)
    runtime: RuntimeSettings = nested(RuntimeSettings)

    def __post_init__(self):
        if (self.data is None) == (self.cocoa is None):
            raise InputError("give exactly one of --data (dataset folder) or --cocoa (annotation file, with --images)")
        if self.cocoa is not None and self.images is None:
            raise InputError("--cocoa needs --images (the folder its file names are relative to)")
        if self.limit is not None:
            check_number(self, "limit", integer=True, low=1)


def run_eval_amodal(job: EvalAmodalJob) -> dict:
    """mIoU of every method (:func:`p2g3d.evaluation.amodal.evaluate_amodal`), also written to ``job.output``."""
    from ..evaluation.amodal import evaluate_amodal, examples_from_cocoa, examples_from_folder
    from ..io import check_output_file, save_json
    from .stages import load_completer

    if job.output is not None:
        check_output_file(job.output)
    if job.group_by is not None:
        check_group_by(job)
    examples = examples_from_folder(job.data) if job.data else examples_from_cocoa(job.cocoa, job.images)
    completer = load_completer(job.model, job.completion, job.runtime)
    result = evaluate_amodal(completer, examples, seed=job.runtime.seed, limit=job.limit, group_by=job.group_by)
    result = {"model": job.model.identity, **result}
    if job.output is not None:
        save_json(job.output, result)
    return result


def check_group_by(job: EvalAmodalJob) -> None:
    """InputError unless ``job.group_by`` is a factor the dataset describes (annotation files describe none)."""
    from ..datasets import GestaltDataset

    known = GestaltDataset(job.data).factor_names if job.data is not None else []
    if job.group_by not in known:
        listed = ", ".join(known) if known else "none (its dataset.json describes no sample factors)"
        raise InputError(f"--group-by {job.group_by!r} is not a factor of the data; its factors: {listed}")
