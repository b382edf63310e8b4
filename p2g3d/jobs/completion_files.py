"""The files of a completion: what ``p2g3d complete`` writes for one image, and ``p2g3d batch`` for each item."""

from __future__ import annotations

import logging
from pathlib import Path

from ..io import json_bytes, listed_outputs, png_bytes, remove_outputs, write_files_atomic
from ..preview import preview_sheet

logger = logging.getLogger(__name__)


def write_completion(output: Path, image, results, mask_names: list[str], summary: dict) -> list[dict]:
    """Write the completed objects of one image to ``output`` and return their ``summary.json`` entries.

    Each object's four PNGs (``object_NN_whole``, ``_rgba``, ``_amodal_mask``, ``_preview``) are written together
    (all or none), then ``summary.json`` (``summary`` plus the objects) last; files an earlier run listed in its
    summary and this run does not write are removed, so the folder never mixes two runs.
    """
    previous = output / "summary.json"
    stale = listed_outputs(previous, ("files",))
    objects = []
    for result, mask_name in zip(results, mask_names):
        stem = f"object_{result.label:02d}"
        files = {
            "whole": (f"{stem}_whole.png", result.whole_rgb),
            "rgba": (f"{stem}_rgba.png", result.whole_rgba),
            "amodal_mask": (f"{stem}_amodal_mask.png", result.amodal_mask),
            "preview": (f"{stem}_preview.png", preview_sheet(image, result)),
        }
        write_files_atomic({output / name: png_bytes(array) for name, array in files.values()})
        objects.append(
            {
                "label": result.label,
                "visible_mask": mask_name,
                "files": {key: name for key, (name, _) in files.items()},
                "amodal_box_xyxy": list(result.amodal_box),
                "visible_area": int(result.visible_mask.sum()),
                "amodal_area": int(result.amodal_mask.sum()),
                "occluded_fraction": round(result.occluded_fraction, 4),
                "confidence": round(result.confidence, 4),
                "best_sample": result.best_sample,
            }
        )
    write_files_atomic({previous: json_bytes({**summary, "objects": objects})})
    remove_outputs(output, stale - {name for obj in objects for name in obj["files"].values()})
    return objects
