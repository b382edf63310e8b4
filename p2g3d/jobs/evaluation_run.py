"""Amodal evaluation on the batch engines: the evaluated objects as items (one per image), a run that completes
them in packs and records each image's scores in its own folder, so that ``p2g3d eval-amodal`` packs objects like
``p2g3d batch``, runs in-process, under ``accelerate launch`` or on Ray, and resumes after a kill.

Report folder::

    evaluation.json            what decides the scores (a rerun with other settings is refused)
    items/ITEM/records.json    the scores of that image's objects (written LAST: the image is done)
    items/ITEM/error.json      an image that could not be evaluated, with the reason
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError
from ..evaluation.amodal import score_completion
from ..evaluation.examples import EvalItem, load_examples
from ..io import json_bytes, write_files_atomic
from .batch.run import claim_run_folder, read_record


class EvaluationRun:
    """The evaluation's resumable run on the batch engines (:func:`p2g3d.jobs.batch.engines.run_on_engine`).

    Args:
        output: the report folder.
        fingerprint: what decides the scores; a folder holding another evaluation is refused, the differences named.
        empty_visible: ``"skip"`` objects whose visible mask is empty, or use their ``"amodal-box"``.
    """

    description = "amodal evaluation"

    def __init__(self, output: str | os.PathLike, fingerprint: dict, empty_visible: str = "skip"):
        self.output = Path(output)
        self.fingerprint = json.loads(json.dumps(fingerprint))
        self.empty_visible = empty_visible

    @staticmethod
    def item_from_json(text: str) -> EvalItem:
        return EvalItem.from_json(text)

    def prepare(self) -> None:
        claim_run_folder(self.output, "evaluation.json", self.fingerprint, "an evaluation")

    def folder(self, item: EvalItem) -> Path:
        return self.output / "items" / item.item_id

    def is_settled(self, item: EvalItem) -> bool:
        return (self.folder(item) / "records.json").is_file() or (self.folder(item) / "error.json").is_file()

    def process(self, completer, items: Sequence[EvalItem], seed: int) -> dict[str, int]:
        """Complete the objects of ``items`` in one packed call and write each image's records (last)."""
        counts = {"processed": 0, "failed": 0}
        loaded = []
        for item in items:
            try:
                loaded.append((item, *load_examples(item, self.empty_visible)))
            except (InputError, OSError) as error:
                self.record_error(item, error)
                counts["failed"] += 1
        scenes = [
            (examples[0].image, [e.visible_mask for e in examples], item.item_id, [e.object_index for e in examples])
            for item, examples, _, _ in loaded
            if examples
        ]
        results = iter(completer.complete_many(scenes, seed=seed, show_progress=False)) if scenes else iter(())
        for item, examples, skipped, replaced in loaded:
            objects = next(results) if examples else []
            records = [score_completion(result, example) for result, example in zip(objects, examples)]
            summary = {"records": records, "skipped": dict(skipped), "replaced": dict(replaced)}
            write_files_atomic({self.folder(item) / "records.json": json_bytes(summary)})
            counts["processed"] += 1
        return counts

    def record_error(self, item: EvalItem, error: BaseException) -> None:
        reason = f"{error.__class__.__name__}: {' '.join(str(error).split())}"
        write_files_atomic({self.folder(item) / "error.json": json_bytes({"id": item.item_id, "reason": reason})})

    def finalize(self, items: Sequence[EvalItem]) -> dict:
        """All records of the run, in the items' order, and the objects skipped or replaced, and failed images."""
        records, skipped, replaced, failed = [], Counter(), Counter(), []
        for item in items:
            done = self.folder(item) / "records.json"
            if done.is_file():
                summary = read_record(done, "delete it to evaluate that image again")
                records += summary["records"]
                skipped.update(summary["skipped"])
                replaced.update(summary["replaced"])
            elif (self.folder(item) / "error.json").is_file():
                failed.append(read_record(self.folder(item) / "error.json", "delete it to evaluate that image again"))
        return {"records": records, "skipped": dict(skipped), "replaced": dict(replaced), "failed": failed}
