"""Amodal segmentation evaluation: mIoU as in the pix2gestalt paper (Table 1), with baselines and breakdowns.

For every object the completer draws N samples. Reported, as mean IoU over objects with the ground-truth amodal
mask, in percent:

* ``single``: the first sample's amodal mask;
* ``vote``: the per-pixel majority over the N samples (united with the visible mask), what ``AmodalCompleter``
  returns (the maintainers' protocol votes over 16 samples);
* ``best_of_n``: the best of the N samples against the ground truth (the paper's "best of 3");
* baselines ``visible`` (the visible mask as the amodal mask) and ``convex_hull`` (its convex hull).

``miou_inv_<method>`` is the IoU on the occluded region only (prediction minus the visible mask against the true
invisible part), over the objects that have one: it says whether a method completes anything or only copies the
visible mask (the visible baseline scores 0 there). Results are also broken down by occlusion rate (the share of the
amodal mask that is hidden, bins :data:`OCCLUSION_BINS`) and by category when the file names them.

Each object is completed under the seed rule (:mod:`p2g3d.sampling`) with its example's ``item_id`` and
``object_index``, so it gets what ``p2g3d complete`` / ``p2g3d batch`` give the same object of the same image file.

Data: the examples of :mod:`.examples`, from a pix2gestalt dataset folder (e.g. the synthetic held-out set) or an
annotation file in any layout of :mod:`.readers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ..errors import InputError
from ..masks import mask_iou
from .examples import AmodalExample

METHODS = ("single", "vote", "best_of_n", "visible", "convex_hull")
OCCLUSION_BINS = ((0, 10), (10, 30), (30, 50), (50, 100))  # percent of the amodal mask hidden, [low, high)


@dataclass(frozen=True)
class Protocol:
    """A named evaluation protocol: the completion settings it fixes, the method it reports, what it is based on
    and what is not known of the official one."""

    name: str
    num_samples: int
    headline: str
    mask_rule: str
    keep_detached: bool
    description: str
    source: str
    unknown: str


UNKNOWN = (
    "not published: whether stuff regions, fully hidden regions and which occlusion range count (here: every "
    "region of the file with a visible part, unless --things-only / --empty-visible say otherwise), and the "
    "framing of non-square images (here: the official squash)"
)
PROTOCOLS = {
    "pix2gestalt-vote": Protocol(
        "pix2gestalt-vote",
        16,
        "vote",
        "official",
        True,
        "16 samples per object, per-pixel majority vote united with the visible mask; masks read as the official "
        "code reads them (gray <= 250 in its channel order, every pixel kept)",
        "the maintainers: 'sampling 16 variations, majority voting' (cvlab-columbia/pix2gestalt issue 19); the "
        "paper's Table 1 (COCO-A 82.87, BSDS-A 80.76 mIoU)",
        UNKNOWN,
    ),
    "pix2gestalt-best-of-3": Protocol(
        "pix2gestalt-best-of-3",
        3,
        "best_of_n",
        "official",
        True,
        "3 samples per object, the best of them against the ground truth (an upper bound, not a prediction); masks "
        "read as the official code reads them",
        "the paper's Table 1 'best of 3' (COCO-A 87.10, BSDS-A 85.68 mIoU); the maintainers: 'compute the best of 3 "
        "with majority voting' (cvlab-columbia/pix2gestalt issue 6)",
        UNKNOWN,
    ),
}


def convex_hull(mask: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool convex hull of the True pixels."""
    from skimage.morphology import convex_hull_image

    return convex_hull_image(mask) if mask.any() else mask.copy()


def occluded_share(visible: np.ndarray, amodal: np.ndarray) -> float:
    """The share of the amodal mask that is not visible, in [0, 1]."""
    area = int(amodal.sum())
    return 0.0 if area == 0 else 1.0 - int((visible & amodal).sum()) / area


def occlusion_bin(share: float) -> str:
    """The :data:`OCCLUSION_BINS` label (``"10-30%"``) of an occluded share in [0, 1]."""
    percent = 100.0 * share
    low, high = next(((low, high) for low, high in OCCLUSION_BINS if percent < high), OCCLUSION_BINS[-1])
    return f"{low}-{high}%"


def invisible_iou(prediction: np.ndarray, visible: np.ndarray, amodal: np.ndarray) -> float | None:
    """IoU of the predicted and the true invisible parts (both minus the visible mask); None when the object has
    no invisible part."""
    truth = amodal & ~visible
    if not truth.any():
        return None
    return mask_iou(prediction & ~visible, truth)


def score_examples(completer, examples: Sequence[AmodalExample], seed: int = 0) -> list[dict]:
    """Complete the examples in one packed call (their objects and samples share the model's batches; seed rule: each
    example's item id and object index, so packing changes no noise) and score each (:func:`score_completion`)."""
    scenes = [(e.image, e.visible_mask, e.item_id, [e.object_index]) for e in examples]
    results = completer.complete_many(scenes, seed=seed, show_progress=False)
    return [score_completion(result, example) for (result,), example in zip(results, examples)]


def score_completion(result, example: AmodalExample) -> dict:
    """Score an example's completion (an :class:`~p2g3d.types.AmodalObject`): the record :func:`summarize`
    aggregates (JSON-ready).

    Holds the example's ids, category, factors and occluded share, each method's IoU (``ious``) and invisible-part IoU
    (``inverse``, None without an invisible part), the IoU of the vote and of the best sample over the first n samples
    for n = 1..N (``vote_by_n``, ``best_by_n``), and the vote, visible and true masks as RLE (for the report's
    sheet)."""
    from ..io import encode_rle
    from ..masks import majority_vote

    visible, truth = example.visible_mask, example.amodal_mask
    samples = np.stack([mask | visible for mask in result.sample_masks])
    sample_ious = [mask_iou(mask, truth) for mask in samples]
    predictions = {
        "single": samples[0],
        "vote": result.amodal_mask,
        "best_of_n": samples[int(np.argmax(sample_ious))],
        "visible": visible,
        "convex_hull": convex_hull(visible),
    }
    votes = [majority_vote(result.sample_masks[:n]) | visible for n in range(1, len(samples) + 1)]
    return {
        "item": example.item_id,
        "object": example.object_index,
        "image": example.image_path,
        "category": example.category,
        "factors": example.factors,
        "occluded_share": occluded_share(visible, truth),
        "ious": {method: mask_iou(mask, truth) for method, mask in predictions.items()},
        "inverse": {method: invisible_iou(mask, visible, truth) for method, mask in predictions.items()},
        "vote_by_n": [mask_iou(vote, truth) for vote in votes],
        "best_by_n": [max(sample_ious[:n]) for n in range(1, len(samples) + 1)],
        "vote_rle": encode_rle(result.amodal_mask),
        "visible_rle": encode_rle(visible),
        "amodal_rle": encode_rle(truth),
    }


def evaluate_amodal(
    completer,
    examples,
    *,
    seed: int = 0,
    limit: int | None = None,
    group_by: str | None = None,
    pack: int = 1,
) -> dict:
    """mIoU (percent) of each method over the examples (at most ``limit``, with a progress bar and ETA),
    ``completer.settings.num_samples`` samples per object: :func:`summarize` of :func:`score_examples` of each pack of
    ``pack`` examples (same noise, fuller batches), in this process. ``p2g3d eval-amodal`` runs the same scoring on
    the batch engines, resumably, in packs of ``--pack`` (:mod:`p2g3d.jobs.eval_amodal`)."""
    total = len(examples) if hasattr(examples, "__len__") else None
    if limit is not None and total is not None:
        total = min(total, limit)
    if isinstance(pack, bool) or not isinstance(pack, int) or pack < 1:
        raise InputError(f"pack must be an integer >= 1, got {pack!r}")
    records, waiting = [], []
    for index, example in enumerate(tqdm(examples, desc="amodal evaluation", unit="object", total=total)):
        if limit is not None and index >= limit:
            break
        if example.visible_mask.any():
            waiting.append(example)
        if len(waiting) == pack:
            records += score_examples(completer, waiting, seed)
            waiting = []
    if waiting:
        records += score_examples(completer, waiting, seed)
    return summarize(records, completer.settings.num_samples, group_by, examples)


def summarize(records: list[dict], num_samples: int, group_by: str | None = None, examples=None) -> dict:
    """The scores of :func:`score_completion` records: overall (``miou_<method>``, ``miou_inv_<method>``, ``objects``,
    ``occluded_objects``, ``miou_vote_by_n`` and ``miou_best_by_n`` for n = 1..N), ``by_occlusion`` (per
    :data:`OCCLUSION_BINS` bin), ``by_category`` (when records name categories), and with ``group_by`` each value of
    that factor under ``"groups"`` (records without the factor count as ``"unknown"``); ``skipped`` and ``replaced``
    of the ``examples`` (:class:`AnnotationExamples`) when given."""
    if not records:
        raise InputError("no example with a non-empty visible mask to evaluate")
    groups: dict[str, list[dict]] = {}
    for record in records:
        names = ["all", f"occlusion:{occlusion_bin(record['occluded_share'])}"]
        if record.get("category") is not None:
            names.append(f"category:{record['category']}")
        if group_by is not None:
            names.append(f"factor:{(record.get('factors') or {}).get(group_by, 'unknown')}")
        for name in names:
            groups.setdefault(name, []).append(record)
    summary = {name: _summary(members) for name, members in groups.items()}
    result = {**summary.pop("all"), "samples": num_samples}
    result["miou_vote_by_n"] = [100.0 * float(v) for v in np.mean([r["vote_by_n"] for r in records], axis=0)]
    result["miou_best_by_n"] = [100.0 * float(v) for v in np.mean([r["best_by_n"] for r in records], axis=0)]
    bins = [f"{low}-{high}%" for low, high in OCCLUSION_BINS]
    result["by_occlusion"] = {b: summary[f"occlusion:{b}"] for b in bins if f"occlusion:{b}" in summary}
    categories = {k.split(":", 1)[1]: v for k, v in summary.items() if k.startswith("category:")}
    if categories:
        result["by_category"] = dict(sorted(categories.items()))
    if group_by is not None:
        result["groups"] = dict(sorted((k.split(":", 1)[1], v) for k, v in summary.items() if k.startswith("factor:")))
    result["skipped"] = dict(getattr(examples, "skipped", {}))
    result["replaced"] = dict(getattr(examples, "replaced", {}))
    return result


def _summary(records: list[dict]) -> dict:
    """Mean IoU (percent) of each method, and on the invisible part over the objects that have one."""
    summary = {f"miou_{m}": 100.0 * float(np.mean([r["ious"][m] for r in records])) for m in METHODS}
    occluded = [r["inverse"] for r in records if r["inverse"]["vote"] is not None]
    for method in METHODS:
        summary[f"miou_inv_{method}"] = 100.0 * float(np.mean([i[method] for i in occluded])) if occluded else None
    return {**summary, "objects": len(records), "occluded_objects": len(occluded)}
