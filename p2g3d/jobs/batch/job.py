"""``p2g3d batch``: the job's settings and the function that runs it on the chosen engine."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ...settings import CompletionSettings, ModelSettings, RuntimeSettings, nested, option
from ...validation import check_choice, check_number
from .engines import ENGINES, run_batch


@dataclass(frozen=True)
class BatchJob:
    """Settings of :func:`run_batch_job` (the ``p2g3d batch`` options)."""

    input: Path = option(
        None, "input", "folder of images with NAME_mask*.png, a .jsonl manifest, or a COCO-style .json", type=Path
    )
    output: Path = option(None, "--output", "output folder (a rerun resumes it)", type=Path, required=True)
    images: Path | None = option(None, "--images", "image folder of a COCO-style annotation file", type=Path)
    engine: str = option(
        "in-process", "--engine", "accelerate: under `accelerate launch`; ray: RAY_ADDRESS or local", choices=ENGINES
    )
    pack: int = option(4, "--pack", "items per completer call: their objects and samples share the model's batches")
    model: ModelSettings = nested(ModelSettings)
    completion: CompletionSettings = nested(CompletionSettings)
    runtime: RuntimeSettings = nested(RuntimeSettings)

    def __post_init__(self):
        check_choice(self, "engine", ENGINES)
        check_number(self, "pack", integer=True, low=1, high=4096)


def run_batch_job(job: BatchJob) -> dict:
    """Complete every item of ``job.input`` into ``job.output`` (resumable); returns the run's summary."""
    from ..stages import load_completer

    def make_completer():
        return load_completer(job.model, job.completion, job.runtime)

    fingerprint = {
        "model": job.model.identity,
        "dtype": job.runtime.dtype,
        "settings": dataclasses.asdict(job.completion),
    }
    return run_batch(
        job.input,
        job.output,
        make_completer,
        fingerprint,
        images=job.images,
        seed=job.runtime.seed,
        engine=job.engine,
        pack=job.pack,
    )


def exit_status(summary: dict, job: BatchJob) -> tuple[int, str | None]:
    """3 and a line when any item failed (the run finished the others), else 0."""
    failed = summary.get("failed", 0)
    if not failed:
        return 0, None
    return 3, f"{failed} of {summary['items']} items failed; the reasons are in {Path(job.output) / 'errors.jsonl'}"
