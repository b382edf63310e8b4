"""``p2g3d eval-amodal``: amodal mIoU of a model on a dataset folder or a benchmark annotation file."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..evaluation.amodal import EMPTY_VISIBLE_RULES, PROTOCOLS
from ..evaluation.readers import LAYOUTS
from ..settings import CompletionSettings, ModelSettings, RuntimeSettings, nested, option
from ..validation import check_choice, check_number


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


def run_eval_amodal(job: EvalAmodalJob) -> dict:
    """mIoU of every method (:func:`p2g3d.evaluation.amodal.evaluate_amodal`); with ``job.output`` also the report
    folder (:mod:`p2g3d.evaluation.report`), whose ``objects.jsonl`` a rerun continues from."""
    from ..evaluation.amodal import AnnotationExamples, FolderExamples, score_examples, summarize
    from ..evaluation.report import RECORDS, write_report
    from ..io import check_output_folder
    from .stages import load_completer

    if job.output is not None:
        check_output_folder(job.output)
    if job.group_by is not None:
        check_group_by(job)
    if job.data is not None:
        examples = FolderExamples(job.data)
    else:
        examples = AnnotationExamples(
            job.annotations, job.images, layout=job.layout, empty_visible=job.empty_visible, things_only=job.things_only
        )
    records_file = None
    if job.output is not None:
        records_file = Path(job.output) / RECORDS
        claim_report_folder(job)
    completer = load_completer(job.model, job.completion, job.runtime)
    records = score_examples(completer, examples, seed=job.runtime.seed, limit=job.limit, records=records_file)
    summary = summarize(records, completer.settings.num_samples, job.group_by, examples)
    result = {"model": job.model.identity, **summary}
    if job.annotations is not None:
        result["layout"] = examples.layout
    if job.preset is not None:
        result["protocol"] = dataclasses.asdict(PROTOCOLS[job.preset])
    if job.output is not None:
        write_report(job.output, result, records)
    return result


def check_group_by(job: EvalAmodalJob) -> None:
    """InputError unless ``job.group_by`` is a factor the dataset describes (annotation files describe none)."""
    from ..datasets import GestaltDataset

    known = GestaltDataset(job.data).factor_names if job.data is not None else []
    if job.group_by not in known:
        listed = ", ".join(known) if known else "none (its dataset.json describes no sample factors)"
        raise InputError(f"--group-by {job.group_by!r} is not a factor of the data; its factors: {listed}")


def claim_report_folder(job: EvalAmodalJob) -> None:
    """Record in ``OUTPUT/evaluation.json`` what decides the scores (data, model, settings, seed); a folder that
    holds an evaluation with other settings is refused with the differences named (its records would not apply)."""
    import json

    from ..io import json_bytes, write_files_atomic

    fingerprint = json.loads(
        json.dumps(
            {
                "data": str(job.data or job.annotations),
                "layout": job.layout,
                "empty_visible": job.empty_visible,
                "things_only": job.things_only,
                "model": job.model.identity,
                "dtype": job.runtime.dtype,
                "seed": job.runtime.seed,
                "completion": dataclasses.asdict(job.completion),
            }
        )
    )
    record = Path(job.output) / "evaluation.json"
    if record.is_file():
        try:
            saved = json.loads(record.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise InputError(
                f"{record} is not valid JSON ({error}); delete it and objects.jsonl to start again"
            ) from error
        changed = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
        if changed:
            details = "; ".join(f"{k}: was {saved.get(k)!r}, now {fingerprint.get(k)!r}" for k in changed)
            raise InputError(f"{job.output} holds an evaluation with other settings ({details}); use another folder")
    else:
        write_files_atomic({record: json_bytes(fingerprint)})
