"""The resumable batch run: which items are done, how one packed call of items is processed and recorded, and
the indexes rebuilt from the item folders. It knows nothing of engines (:mod:`.engines`).

Output folder::

    batch.json                 the run's settings (a rerun with other settings is refused)
    items/ITEM/                what `p2g3d complete` writes, plus done.json, written LAST: the item is finished
                               (or error.json: the item failed, with the reason; a rerun does not retry it)
    results.jsonl              one line per finished item (rebuilt at the end of every run)
    amodal_annotations.json    the amodal masks as COCO annotations (RLE), with confidence as score
    errors.jsonl               items that failed, with the reason

Every file is written atomically and an item's samples depend only on the run's seed, the item id and the object's
position (the seed rule, :mod:`p2g3d.sampling`), so a rerun skips finished items and ends with the files of an
uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...errors import InputError
from ...io import check_output_folder, encode_rle, json_bytes, write_files_atomic
from ...sampling import batched
from ..completion_files import write_completion
from .inputs import BatchItem, load_item


class BatchRun:
    """The engine-agnostic core: which items are done, how one item is processed and recorded, the final indexes.

    Args:
        output: the output folder.
        fingerprint: everything that decides the results (model, settings, seed); a folder holding a run with
            another fingerprint is refused, with the differences named.
    """

    description = "batch"  # what the progress bar says

    def __init__(self, output: str | os.PathLike, fingerprint: dict):
        self.output = Path(output)
        self.fingerprint = json.loads(json.dumps(fingerprint))  # what the JSON file will hold

    def prepare(self) -> None:
        """Check the output folder and its settings; record the settings of a new run."""
        claim_run_folder(self.output, "batch.json", self.fingerprint, "a batch run")

    @staticmethod
    def item_from_json(text: str) -> BatchItem:
        """An item as the Ray engine's rows carry it."""
        return BatchItem.from_json(text)

    def folder(self, item: BatchItem) -> Path:
        return self.output / "items" / item.item_id

    def is_done(self, item: BatchItem) -> bool:
        return (self.folder(item) / "done.json").is_file()

    def is_settled(self, item: BatchItem) -> bool:
        """Done, or failed with its reason recorded (a rerun does not retry it; delete its error.json to retry)."""
        return self.is_done(item) or (self.folder(item) / "error.json").is_file()

    def process(self, completer, items: Sequence[BatchItem], seed: int) -> dict[str, int]:
        """Complete ``items`` in one packed call (their objects and samples share batches), write each item's files
        and then its done marker (last). An item with bad input (unreadable, or a mask that vanishes at the model's
        size) is recorded in its folder and the others go on, whatever the packing. Returns ``{"processed": n, "failed":
        m}``."""
        loaded, counts = [], {"processed": 0, "failed": 0}
        for item in items:
            try:
                loaded.append((item, *load_item(item)))
            except (ValueError, OSError) as error:  # bad input of this item: recorded, the run goes on
                self.record_error(item, error)
                counts["failed"] += 1
        if not loaded:
            return counts
        try:
            results = completer.complete_many(
                [(image, masks, item.item_id) for item, image, masks in loaded], seed=seed, show_progress=False
            )
        except InputError as error:  # one item's input is bad at the model's size
            if len(loaded) == 1:
                self.record_error(loaded[0][0], error)
                counts["failed"] += 1
                return counts
            for item, _, _ in loaded:  # find it alone; the others are completed and written
                for key, value in self.process(completer, [item], seed).items():
                    counts[key] += value
            return counts
        for (item, image, _), objects in zip(loaded, results):
            self._write(item, image, objects, seed)
            counts["processed"] += 1
        return counts

    def _write(self, item: BatchItem, image: np.ndarray, results, seed: int) -> None:
        results = [dataclasses.replace(result, label=label) for result, label in zip(results, item.labels)]
        summary = {"image": str(item.image), "seed": seed, "item": item.item_id}
        objects = write_completion(self.folder(item), image, results, _mask_names(item), summary)
        for entry, result in zip(objects, results):
            entry["amodal_rle"] = encode_rle(result.amodal_mask)
            entry["visible_rle"] = encode_rle(result.visible_mask)
        record = {
            "id": item.item_id,
            "image": str(item.image),
            "height": image.shape[0],
            "width": image.shape[1],
            "image_info": dict(item.image_info),
            "objects": objects,
        }
        (self.folder(item) / "error.json").unlink(missing_ok=True)
        write_files_atomic({self.folder(item) / "done.json": json_bytes(record)})

    def record_error(self, item: BatchItem, error: BaseException) -> None:
        reason = f"{error.__class__.__name__}: {' '.join(str(error).split())}"
        write_files_atomic(
            {
                self.folder(item) / "error.json": json_bytes(
                    {"id": item.item_id, "image": str(item.image), "reason": reason}
                )
            }
        )

    def finalize(self, items: Sequence[BatchItem]) -> dict:
        """Rebuild ``results.jsonl``, ``amodal_annotations.json`` and ``errors.jsonl`` from the item folders."""
        redo = "delete it to redo that item"
        records = [read_record(self.folder(i) / "done.json", redo) for i in items if self.is_done(i)]
        errors = [
            read_record(self.folder(i) / "error.json", redo)
            for i in items
            if not self.is_done(i) and (self.folder(i) / "error.json").is_file()
        ]
        lines = "".join(json.dumps({k: v for k, v in r.items() if k != "image_info"}) + "\n" for r in records)
        write_files_atomic(
            {
                self.output / "results.jsonl": lines.encode(),
                self.output / "amodal_annotations.json": json_bytes(coco_annotations(records)),
                self.output / "errors.jsonl": "".join(json.dumps(e) + "\n" for e in errors).encode(),
            }
        )
        return {
            "items": len(items),
            "done": len(records),
            "failed": len(errors),
            "objects": sum(len(r["objects"]) for r in records),
            "output": str(self.output),
        }


def claim_run_folder(output: Path, record_name: str, fingerprint: dict, kind: str) -> None:
    """Check ``output`` before a run starts: a new run records its ``fingerprint`` (what decides its results) in
    ``output/record_name``; a folder holding a run of ``kind`` with another fingerprint is refused, the differences
    named (its finished items would not apply)."""
    check_output_folder(output)
    fingerprint = json.loads(json.dumps(fingerprint))  # as it reads back (tuples become lists)
    record = output / record_name
    if not record.is_file():
        write_files_atomic({record: json_bytes(fingerprint)})
        return
    saved = read_record(record, "delete it, or use another output folder, to start the run again")
    changed = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
    if changed:
        details = "; ".join(f"{k}: was {saved.get(k)!r}, now {fingerprint.get(k)!r}" for k in changed)
        raise InputError(f"{output} holds {kind} with other settings ({details}); use another output folder")


def read_record(path: Path, remedy: str) -> dict:
    """A JSON record of the run; InputError naming the file and the ``remedy`` if it is not a JSON object."""
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path} is not valid JSON ({error}); {remedy}") from error
    if not isinstance(record, dict):
        raise InputError(f"{path} does not hold a JSON object; {remedy}")
    return record


def _mask_names(item: BatchItem) -> list[str]:
    return [str(m) if item.size is None else f"annotation {label}" for m, label in zip(item.masks, item.labels)]


def coco_annotations(records: Sequence[dict]) -> dict:
    """Finished item records -> a COCO results file: images, one annotation per object with its amodal mask as RLE
    ``segmentation``, ``bbox`` ``[x, y, w, h]`` of the amodal box, ``area``, ``score`` (sample agreement), and the
    visible mask as ``inmodal_seg`` (the COCOA field name)."""
    images, annotations = [], []
    for number, record in enumerate(records, start=1):
        image_id = record["image_info"].get("id", number)
        file_name = record["image_info"].get("file_name", Path(record["image"]).name)
        images.append({"id": image_id, "file_name": file_name, "height": record["height"], "width": record["width"]})
        for entry in record["objects"]:
            x0, y0, x1, y1 = entry["amodal_box_xyxy"]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "iscrowd": 0,
                    "segmentation": entry["amodal_rle"],
                    "inmodal_seg": entry["visible_rle"],
                    "area": entry["amodal_area"],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": entry["confidence"],
                    "source_label": entry["label"],
                }
            )
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "object"}]}


def pending_chunks(run: BatchRun, items: Sequence[BatchItem], pack: int) -> tuple[list[Sequence[BatchItem]], dict]:
    """The chunks of ``pack`` consecutive items that still have unsettled items, and the start of the counts.

    Chunks are cut from ALL the items, not from the unfinished ones, and a chunk is redone whole: packed items
    share UNet batches, so an item's float round-off depends on its chunk, and only fixed chunks make a resumed
    run give the bytes of an uninterrupted one (finished items of a redone chunk are rewritten identically)."""
    chunks = [chunk for chunk in batched(list(items), pack) if not all(run.is_settled(item) for item in chunk)]
    redone = sum(len(chunk) for chunk in chunks)
    return chunks, {"processed": 0, "failed": 0, "skipped": len(items) - redone}
