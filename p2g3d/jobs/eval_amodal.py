"""``p2g3d eval-amodal``: amodal mIoU of a model on a dataset folder or a benchmark annotation file."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..evaluation.amodal import PROTOCOLS
from ..evaluation.examples import EMPTY_VISIBLE_RULES
from ..evaluation.readers import LAYOUTS
from ..settings import CompletionSettings, ModelSettings, RuntimeSettings, nested, option
from ..validation import check_choice, check_number
from .batch.engines import ENGINES


@dataclass(frozen=True)
class EvalAmodalJob:
    """Settings of :func:`run_eval_amodal` (the ``p2g3d eval-amodal`` options): exactly one of ``data`` and
    ``annotations`` (with ``images``)."""

    data: Path | None = option(None, "--data", "pix2gestalt-format dataset folder", type=Path)
    annotations: Path | None = option(
        None,
        "--annotations",
        "annotation file: COCO-A / BSDS-A (amodalAPI), KINS or COCOA-cls (detected; see --layout)",
        type=Path,
        aliases=("--cocoa",),
    )
    images: Path | None = option(None, "--images", "image folder of --annotations", type=Path)
    layout: str | None = option(None, "--layout", "the annotation file's layout (default: detected)", choices=LAYOUTS)
    empty_visible: str = option(
        "skip",
        "--empty-visible",
        "objects whose visible mask is empty: skip them, or take the amodal mask's box as visible (PCNet)",
        choices=EMPTY_VISIBLE_RULES,
    )
    things_only: bool = option(False, "--things-only", "leave out regions marked as stuff (amodalAPI isStuff)")
    preset: str | None = option(
        None,
        "--preset",
        "a named protocol; it sets --samples, --mask-rule and --keep-detached (README: amodal evaluation)",
        choices=tuple(PROTOCOLS),
    )
    limit: int | None = option(None, "--limit", "evaluate at most this many objects")
    engine: str = option(
        "in-process", "--engine", "accelerate: under `accelerate launch`; ray: RAY_ADDRESS or local", choices=ENGINES
    )
    pack: int = option(4, "--pack", "images per completer call: their objects and samples share the model's batches")
    group_by: str | None = option(None, "--group-by", "also report each value of this sample factor (e.g. held_out)")
    output: Path | None = option(
        None,
        "--output",
        "report folder: JSON, markdown and HTML tables, plots, best/worst sheet (a rerun resumes)",
        type=Path,
    )
    model: ModelSettings = nested(ModelSettings)
    completion: CompletionSettings = nested(CompletionSettings)
    runtime: RuntimeSettings = nested(RuntimeSettings)

    def __post_init__(self):
        if (self.data is None) == (self.annotations is None):
            raise InputError(
                "give exactly one of --data (dataset folder) or --annotations (annotation file, with --images)"
            )
        if self.annotations is not None and self.images is None:
            raise InputError("--annotations needs --images (the folder its file names are relative to)")
        if self.layout is not None:
            check_choice(self, "layout", LAYOUTS)
        if self.preset is not None:
            check_choice(self, "preset", tuple(PROTOCOLS))
            protocol = PROTOCOLS[self.preset]
            completion = dataclasses.replace(
                self.completion,
                num_samples=protocol.num_samples,
                mask_rule=protocol.mask_rule,
                keep_detached=protocol.keep_detached,
            )
            object.__setattr__(self, "completion", completion)  # the preset fixes these settings
        check_choice(self, "empty_visible", EMPTY_VISIBLE_RULES)
        if self.limit is not None:
            check_number(self, "limit", integer=True, low=1)
        check_choice(self, "engine", ENGINES)
        if self.engine != "in-process" and self.output is None:
            raise InputError(f"--engine {self.engine} needs -o REPORT (a folder every process and worker can write)")
        check_number(self, "pack", integer=True, low=1, high=4096)


def run_eval_amodal(job: EvalAmodalJob) -> dict:
    """mIoU of every method (:func:`p2g3d.evaluation.amodal.summarize`) over the objects of ``job.data`` or
    ``job.annotations``, scored on the batch engines (:mod:`.evaluation_run`); with ``job.output`` also the report
    folder (:mod:`p2g3d.evaluation.report`), which a rerun continues."""
    import tempfile

    from ..evaluation.amodal import summarize
    from ..evaluation.examples import items_from_annotations, items_from_folder
    from ..evaluation.readers import read_annotation_file
    from ..evaluation.report import write_report
    from ..io import check_output_folder
    from .batch.engines import run_on_engine
    from .evaluation_run import EvaluationRun
    from .stages import load_completer

    if job.output is not None:
        check_output_folder(job.output)
    if job.group_by is not None:
        check_group_by(job)
    if job.data is not None:
        items, skipped, layout = items_from_folder(job.data), {}, None
    else:
        file = read_annotation_file(job.annotations, job.layout)
        items, skipped = items_from_annotations(file, job.images, things_only=job.things_only)
        layout = file.layout
        if not items:
            raise InputError(f"{job.annotations} holds no object to evaluate (with an amodal ground truth)")
    items = first_objects(items, job.limit) if job.limit is not None else items

    def make_completer():
        return load_completer(job.model, job.completion, job.runtime)

    with tempfile.TemporaryDirectory(prefix="p2g3d-eval-") as scratch:
        run = EvaluationRun(job.output or scratch, evaluation_fingerprint(job), job.empty_visible)
        gathered, _ = run_on_engine(run, items, make_completer, job.runtime.seed, engine=job.engine, pack=job.pack)
    if not gathered:  # another process of an accelerate launch: the main one reports
        return {}
    notes = Notes(dict(Counter(skipped) + Counter(gathered["skipped"])), gathered["replaced"])
    summary = summarize(gathered["records"], job.completion.num_samples, job.group_by, notes)
    result = {"model": job.model.identity, **summary, "failed_images": gathered["failed"]}
    result["regions"] = {  # which regions count
        "things_only": job.things_only,
        "empty_visible": job.empty_visible,
        "occlusion_range": "all (broken down in by_occlusion)",
    }
    if layout is not None:
        result["layout"] = layout
    if job.preset is not None:
        result["protocol"] = dataclasses.asdict(PROTOCOLS[job.preset])
    if job.output is not None:
        write_report(job.output, result, gathered["records"])
    return result


@dataclass(frozen=True)
class Notes:
    """What the examples left out or changed, as :func:`~p2g3d.evaluation.amodal.summarize` reads it."""

    skipped: dict
    replaced: dict


def first_objects(items: list, limit: int) -> list:
    """The items cut to their first ``limit`` objects in all."""
    kept, left = [], limit
    for item in items:
        if left <= 0:
            break
        objects = item.objects[:left]
        kept.append(dataclasses.replace(item, objects=objects))
        left -= len(objects)
    return kept


def evaluation_fingerprint(job: EvalAmodalJob) -> dict:
    """What decides the scores: a report folder holding another evaluation is refused."""
    return {
        "data": str(job.data or job.annotations),
        "layout": job.layout,
        "empty_visible": job.empty_visible,
        "things_only": job.things_only,
        "limit": job.limit,
        "model": job.model.identity,
        "dtype": job.runtime.dtype,
        "seed": job.runtime.seed,
        "completion": dataclasses.asdict(job.completion),
    }


def check_group_by(job: EvalAmodalJob) -> None:
    """InputError unless ``job.group_by`` is a factor the dataset describes (annotation files describe none)."""
    from ..datasets import GestaltDataset

    known = GestaltDataset(job.data).factor_names if job.data is not None else []
    if job.group_by not in known:
        listed = ", ".join(known) if known else "none (its dataset.json describes no sample factors)"
        raise InputError(f"--group-by {job.group_by!r} is not a factor of the data; its factors: {listed}")
