"""Amodal completion over a dataset: resumable, one bad item never stops the run, on an engine of the user's choice.

Inputs (:func:`read_items`):

* a JSONL manifest: one object per line, ``{"image": "a.jpg", "masks": ["a_cup.png", ...], "id": "optional"}``,
  paths relative to the manifest;
* a COCO-A / BSDS-A style annotation file (``.json``) with its image folder: one item per image, one object per
  annotation, the visible mask from ``inmodal_seg`` (or ``segmentation`` where there is none);
* a folder of images ``NAME.png|jpg|jpeg`` with their visible masks ``NAME_mask*.png`` beside them.

Output folder::

    batch.json                 the run's settings (a rerun with other settings is refused)
    items/ITEM/                what `p2g3d complete` writes, plus done.json, written LAST: the item is finished
    results.jsonl              one line per finished item (rebuilt at the end of every run)
    amodal_annotations.json    the amodal masks as COCO annotations (RLE), with confidence as score
    errors.jsonl               items that failed, with the reason

Rerunning the same command skips finished items and ends with the same files as an uninterrupted run: every file
is written atomically, an item's seed comes from the run's seed and the item id (not from the order or the
engine's sharding), and the indexes are rebuilt from the done markers. Engines, all on the same
:class:`BatchRun` core, which knows nothing of engines:

* ``in-process`` (default): one model, a progress bar with items/s and ETA;
* ``accelerate``: ``accelerate launch -m p2g3d.cli batch ... --engine accelerate`` shards the items over the
  processes (one model per process, one GPU each); the main process writes the indexes;
* ``ray`` (``pip install 'p2g3d[ray]'``): Ray Data over the items with an actor pool
  (``ActorPoolStrategy``), one model per actor and ``num_gpus=1`` per actor where the cluster has GPUs; connects
  to the cluster in ``RAY_ADDRESS`` or starts a local one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import MissingDependencyError
from ..io import (
    check_output_folder,
    decode_segmentation,
    encode_rle,
    json_bytes,
    load_image,
    load_mask,
    object_masks,
    write_files_atomic,
)
from ..sampling import batched, derive_seed
from .completion_files import write_completion

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ENGINES = ("in-process", "accelerate", "ray")
RAY_OBJECT_STORE_BYTES = 256 * 2**20  # the items are file paths: a small object store is plenty
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class BatchItem:
    """One image and the visible masks of its objects.

    Attributes:
        item_id: stable, file-name-safe id (the output sub-folder).
        image: image file.
        masks: visible masks: mask files, or COCO segmentations (polygons / RLE) when ``size`` is given.
        labels: one id per object (COCO annotation ids, else 0, 1, ...).
        size: ``(height, width)`` of the COCO image, for decoding its segmentations.
        image_info: what the COCO output records of the image (``id``, ``file_name``).
    """

    item_id: str
    image: Path
    masks: tuple
    labels: tuple[int, ...]
    size: tuple[int, int] | None = None
    image_info: tuple[tuple[str, object], ...] = ()


def read_items(source: str | os.PathLike, images: str | os.PathLike | None = None) -> list[BatchItem]:
    """The items of a JSONL manifest, a COCO-style annotation file (with ``images``) or a folder (module docstring).
    Ids are made unique and file-name safe."""
    source = Path(source)
    if source.is_dir():
        items = _folder_items(source)
    elif source.suffix == ".jsonl":
        items = _manifest_items(source)
    elif source.suffix == ".json":
        if images is None:
            raise ValueError(f"{source} is an annotation file: give its image folder with --images")
        items = _coco_items(source, Path(images))
    else:
        raise ValueError(f"{source}: expected a folder, a .jsonl manifest or a COCO-style .json annotation file")
    if not items:
        raise ValueError(f"{source} holds no item (no image with visible masks)")
    seen: set[str] = set()
    unique = []
    for index, item in enumerate(items):
        item_id = _UNSAFE.sub("_", item.item_id).strip("._") or f"item_{index}"
        if item_id in seen:
            item_id = f"{item_id}_{index}"
        seen.add(item_id)
        unique.append(dataclasses.replace(item, item_id=item_id))
    return unique


def _folder_items(folder: Path) -> list[BatchItem]:
    items = []
    for image in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and "_mask" not in p.stem):
        masks = tuple(sorted(folder.glob(f"{image.stem}_mask*.png")))
        items.append(BatchItem(image.stem, image, masks, tuple(range(len(masks)))))
    return items


def _manifest_items(manifest: Path) -> list[BatchItem]:
    if not manifest.is_file():
        raise FileNotFoundError(f"no such manifest: {manifest}")
    items = []
    for number, line in enumerate(manifest.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            image, masks = manifest.parent / entry["image"], tuple(manifest.parent / m for m in entry["masks"])
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(
                f'{manifest} line {number}: expected {{"image": ..., "masks": [...]}} ({error})'
            ) from error
        items.append(BatchItem(str(entry.get("id", Path(entry["image"]).stem)), image, masks, tuple(range(len(masks)))))
    return items


def _coco_items(annotation_file: Path, images: Path) -> list[BatchItem]:
    if not annotation_file.is_file():
        raise FileNotFoundError(f"no such annotation file: {annotation_file}")
    try:
        data = json.loads(annotation_file.read_text())
        by_image: dict = {image["id"]: [] for image in data["images"]}
        for annotation in data["annotations"]:
            by_image[annotation["image_id"]].append(annotation)
        infos = {image["id"]: image for image in data["images"]}
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(
            f"{annotation_file} is not a COCO-style annotation file ({error.__class__.__name__}: {error})"
        ) from error
    items = []
    for image_id, image_annotations in by_image.items():
        info = infos[image_id]
        visible = tuple(a.get("inmodal_seg", a.get("segmentation")) for a in image_annotations)
        items.append(
            BatchItem(
                Path(info["file_name"]).stem,
                images / info["file_name"],
                visible,
                tuple(a["id"] for a in image_annotations),
                (info["height"], info["width"]),
                (("id", image_id), ("file_name", info["file_name"])),
            )
        )
    return items


def load_item(item: BatchItem) -> tuple[np.ndarray, list[np.ndarray]]:
    """The item's ``(H, W, 3)`` image and ``(H, W)`` bool visible masks, checked (ValueError / OSError if bad)."""
    image = load_image(item.image)
    if not item.masks:
        raise ValueError(f"{item.image} has no visible mask")
    if item.size is None:
        masks = [load_mask(path) for path in item.masks]
    else:
        if image.shape[:2] != item.size:
            raise ValueError(
                f"{item.image} is {image.shape[0]}x{image.shape[1]}, "
                f"but its annotations say {item.size[0]}x{item.size[1]}"
            )
        masks = [decode_segmentation(segmentation, *item.size) for segmentation in item.masks]
    object_masks(masks, *image.shape[:2])  # sizes, emptiness, binary values
    return image, masks


class BatchRun:
    """The engine-agnostic core: which items are done, how one item is processed and recorded, the final indexes.

    Args:
        output: the output folder.
        fingerprint: everything that decides the results (model, settings, seed); a folder holding a run with
            another fingerprint is refused, with the differences named.
    """

    def __init__(self, output: str | os.PathLike, fingerprint: dict):
        self.output = Path(output)
        self.fingerprint = json.loads(json.dumps(fingerprint))  # what the JSON file will hold

    def prepare(self) -> None:
        """Check the output folder and its settings; record the settings of a new run."""
        check_output_folder(self.output)
        record = self.output / "batch.json"
        if record.is_file():
            saved = json.loads(record.read_text())
            changed = sorted(k for k in set(saved) | set(self.fingerprint) if saved.get(k) != self.fingerprint.get(k))
            if changed:
                details = "; ".join(f"{k}: was {saved.get(k)!r}, now {self.fingerprint.get(k)!r}" for k in changed)
                raise ValueError(
                    f"{self.output} holds a batch run with other settings ({details}); use another output folder"
                )
        else:
            write_files_atomic({record: json_bytes(self.fingerprint)})

    def folder(self, item: BatchItem) -> Path:
        return self.output / "items" / item.item_id

    def is_done(self, item: BatchItem) -> bool:
        return (self.folder(item) / "done.json").is_file()

    def is_settled(self, item: BatchItem) -> bool:
        """Done, or failed with its reason recorded (a rerun does not retry it; delete its error.json to retry)."""
        return self.is_done(item) or (self.folder(item) / "error.json").is_file()

    def process(self, completer, items: Sequence[BatchItem], seed: int) -> dict[str, int]:
        """Complete ``items`` in one packed call (their objects and samples share batches), write each item's files
        and then its done marker (last). An item with bad input is recorded in its folder and the others go on.
        Returns ``{"processed": n, "failed": m}``."""
        loaded, counts = [], {"processed": 0, "failed": 0}
        for item in items:
            try:
                loaded.append((item, *load_item(item)))
            except (ValueError, OSError) as error:  # bad input of this item: recorded, the run goes on
                self.record_error(item, error)
                counts["failed"] += 1
        seeds = [derive_seed(seed, zlib.crc32(item.item_id.encode())) for item, _, _ in loaded]
        try:
            results = completer.complete_many(
                [(image, masks, s) for (_, image, masks), s in zip(loaded, seeds)], show_progress=False
            )
        except ValueError:
            if len(loaded) == 1:
                raise
            for item, _, _ in loaded:  # one item's input is bad at the model's size: find it alone
                for key, value in self.process(completer, [item], seed).items():
                    counts[key] += value
            return counts
        for (item, image, _), item_seed, objects in zip(loaded, seeds, results):
            self._write(item, image, objects, item_seed)
            counts["processed"] += 1
        return counts

    def _write(self, item: BatchItem, image: np.ndarray, results, item_seed: int) -> None:
        results = [dataclasses.replace(result, label=label) for result, label in zip(results, item.labels)]
        summary = {"image": str(item.image), "seed": item_seed}
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
        records = [json.loads((self.folder(i) / "done.json").read_text()) for i in items if self.is_done(i)]
        errors = [
            json.loads((self.folder(i) / "error.json").read_text())
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


def run_items(
    run: BatchRun, items: Sequence[BatchItem], make_completer: Callable, seed: int, *, shard=(0, 1), pack: int = 4
) -> dict:
    """Process the unfinished items of shard ``index`` of ``count`` (``items[index::count]``) with one completer,
    ``pack`` items per packed completer call. Returns counts for this shard."""
    index, count = shard
    chunks, counts = pending_chunks(run, items[index::count], pack)
    if not chunks:
        return counts
    completer = make_completer()
    with tqdm(total=sum(len(chunk) for chunk in chunks), desc="batch", unit="item", disable=index != 0) as progress:
        for chunk in chunks:
            for key, value in run.process(completer, chunk, seed).items():
                counts[key] += value
            progress.update(len(chunk))
    return counts


def pending_chunks(run: BatchRun, items: Sequence[BatchItem], pack: int) -> tuple[list[Sequence[BatchItem]], dict]:
    """The chunks of ``pack`` consecutive items that still have unsettled items, and the start of the counts.

    Chunks are cut from ALL the items, not from the unfinished ones, and a chunk is redone whole: packed items
    share UNet batches, so an item's float round-off depends on its chunk, and only fixed chunks make a resumed
    run give the bytes of an uninterrupted one (finished items of a redone chunk are rewritten identically)."""
    chunks = [chunk for chunk in batched(list(items), pack) if not all(run.is_settled(item) for item in chunk)]
    redone = sum(len(chunk) for chunk in chunks)
    return chunks, {"processed": 0, "failed": 0, "skipped": len(items) - redone}


def run_ray(
    run: BatchRun,
    items: Sequence[BatchItem],
    make_completer: Callable,
    seed: int,
    *,
    pack: int = 4,
    actors: int | None = None,
) -> dict:
    """Process the unfinished items on a Ray cluster: Ray Data over the chunks of ``pack`` items, ``map_batches``
    with an actor pool of ``actors`` workers (default: one per GPU of the cluster, else one), each holding one
    model."""
    try:
        import ray
        from ray.data import ActorPoolStrategy
    except ImportError as error:
        raise MissingDependencyError(f"the ray engine needs Ray Data: pip install 'p2g3d[ray]' ({error})") from error

    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False, object_store_memory=RAY_OBJECT_STORE_BYTES)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    actors = actors or max(1, gpus)
    chunks, counts = pending_chunks(run, items, pack)
    if not chunks:
        return counts

    class Worker:  # one model per actor, built once
        def __init__(self):
            self.completer = make_completer()

        def __call__(self, batch: dict) -> dict:  # one chunk per call: chunks are fixed (see pending_chunks)
            counts = run.process(self.completer, chunks[int(batch["chunk"][0])], seed)
            return {"processed": np.array([counts["processed"]]), "failed": np.array([counts["failed"]])}

    dataset = ray.data.from_items([{"chunk": index} for index in range(len(chunks))])
    results = dataset.map_batches(
        Worker, batch_size=1, compute=ActorPoolStrategy(size=actors), num_gpus=1 if gpus else 0
    ).take_all()
    for row in results:
        counts["processed"] += int(row["processed"])
        counts["failed"] += int(row["failed"])
    return counts


def run_batch(
    source: str | os.PathLike,
    output: str | os.PathLike,
    make_completer: Callable,
    fingerprint: dict,
    *,
    images: str | os.PathLike | None = None,
    seed: int = 0,
    engine: str = "in-process",
    pack: int = 4,
) -> dict:
    """Complete every item of ``source`` into ``output`` on ``engine``, ``pack`` items per packed completer call
    (their objects and samples share the UNet batches); returns a summary (counts, seconds)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    started = time.perf_counter()
    items = read_items(source, images)
    run = BatchRun(output, {**fingerprint, "seed": seed, "input": str(source)})
    if engine in ("in-process", "ray"):
        run.prepare()
        runner = run_items if engine == "in-process" else run_ray
        counts = runner(run, items, make_completer, seed, pack=pack)
        summary = run.finalize(items)
    else:
        from accelerate import PartialState

        state = PartialState()
        if state.is_main_process:
            run.prepare()
        state.wait_for_everyone()
        counts = run_items(
            run, items, make_completer, seed, shard=(state.process_index, state.num_processes), pack=pack
        )
        state.wait_for_everyone()
        summary = run.finalize(items) if state.is_main_process else {}
    return {**summary, **counts, "seconds": round(time.perf_counter() - started, 1)}
