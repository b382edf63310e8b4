"""The amodal evaluation report: a folder a person opens (``index.html``: tables and plots), with the numbers as
JSON and markdown, and a sheet of the best and worst objects.

Files: ``result.json`` (what :func:`~.amodal.evaluate_amodal` returned), ``report.md`` and ``index.html`` (the same
tables), ``miou_by_occlusion.png`` (mIoU against occlusion rate, model and baselines), ``miou_by_samples.png`` (mIoU of
the vote and of the best of n samples against n), ``best_worst.png`` (image, visible mask, prediction, ground truth
of the objects with the highest and lowest vote IoU), and ``objects.jsonl`` (one record per object). The run's own
files (``evaluation.json``, ``items/``) are described in :mod:`p2g3d.jobs.evaluation_run`: a rerun into the same
folder continues from them.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import numpy as np

from ..io import json_bytes, png_bytes, write_files_atomic
from .amodal import METHODS, OCCLUSION_BINS

RECORDS = "objects.jsonl"
PLOTTED = ("vote", "best_of_n", "visible", "convex_hull")
NAMES = {
    "single": "single sample",
    "vote": "vote",
    "best_of_n": "best of N",
    "visible": "visible mask",
    "convex_hull": "convex hull",
}


def _cell(value) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def tables(result: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """The report's tables as ``(title, header, rows)``."""
    header = ["", "objects", *(NAMES[m] for m in METHODS)]
    overall = [
        ["mIoU", str(result["objects"]), *(_cell(result[f"miou_{m}"]) for m in METHODS)],
        ["mIoU, invisible part", str(result["occluded_objects"]), *(_cell(result[f"miou_inv_{m}"]) for m in METHODS)],
    ]
    found = [("Overall", header, overall)]
    for title, key in (("By occlusion rate", "by_occlusion"), ("By category", "by_category"), ("By factor", "groups")):
        if result.get(key):
            rows = [
                [name, str(g["objects"]), *(_cell(g[f"miou_{m}"]) for m in METHODS)] for name, g in result[key].items()
            ]
            found.append((title, header, rows))
    samples = [
        [str(n + 1), _cell(v), _cell(b)]
        for n, (v, b) in enumerate(zip(result["miou_vote_by_n"], result["miou_best_by_n"]))
    ]
    found.append(("By number of samples", ["n", "vote of n", "best of n"], samples))
    return found


def markdown(result: dict, title: str) -> str:
    lines = [f"# {title}", "", _protocol_line(result), ""]
    for name, header, rows in tables(result):
        lines += [f"## {name}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    lines += ["![mIoU by occlusion](miou_by_occlusion.png)", "", "![mIoU by samples](miou_by_samples.png)", ""]
    lines += ["![best and worst objects](best_worst.png)", ""]
    return "\n".join(lines)


def page(result: dict, title: str) -> str:
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"]
    parts.append(
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}img{max-width:100%}</style>"
    )
    parts.append(f"<h1>{html.escape(title)}</h1><p>{html.escape(_protocol_line(result))}</p>")
    for name, header, rows in tables(result):
        parts.append(f"<h2>{html.escape(name)}</h2><table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header))
        parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows]
        parts.append("</table>")
    for image in ("miou_by_occlusion.png", "miou_by_samples.png", "best_worst.png"):
        parts.append(f"<h2>{image[:-4].replace('_', ' ')}</h2><img src='{image}'>")
    return "\n".join(parts)


def _protocol_line(result: dict) -> str:
    text = f"Model {result.get('model', '?')}, {result['samples']} samples per object"
    if result.get("protocol"):
        text += f"; protocol {result['protocol']['name']}: {result['protocol']['description']}"
    if result.get("regions"):
        regions = result["regions"]
        text += f"; regions: {'things only' if regions['things_only'] else 'things and stuff'}, fully hidden ones "
        text += "skipped" if regions["empty_visible"] == "skip" else f"given their {regions['empty_visible']}"
    if result.get("skipped"):
        text += "; left out: " + ", ".join(f"{n} ({reason})" for reason, n in result["skipped"].items())
    if result.get("replaced"):
        text += "; visible mask replaced: " + ", ".join(f"{n} ({rule})" for rule, n in result["replaced"].items())
    return text + "."


def plots(result: dict) -> dict[str, bytes]:
    """The two plots as PNG bytes (matplotlib, Agg)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = {}
    bins = [f"{low}-{high}%" for low, high in OCCLUSION_BINS if f"{low}-{high}%" in result["by_occlusion"]]
    figure, axes = plt.subplots(figsize=(6, 4))
    for method in PLOTTED:
        axes.plot(bins, [result["by_occlusion"][b][f"miou_{method}"] for b in bins], marker="o", label=NAMES[method])
    axes.set(xlabel="occlusion rate (share of the amodal mask hidden)", ylabel="mIoU (%)", title="mIoU by occlusion")
    axes.legend()
    figures["miou_by_occlusion.png"] = figure
    figure, axes = plt.subplots(figsize=(6, 4))
    n = np.arange(1, len(result["miou_vote_by_n"]) + 1)
    axes.plot(n, result["miou_vote_by_n"], marker="o", label="vote of n")
    axes.plot(n, result["miou_best_by_n"], marker="s", label="best of n")
    axes.set(xlabel="samples n", ylabel="mIoU (%)", title="mIoU by number of samples")
    axes.legend()
    figures["miou_by_samples.png"] = figure
    encoded = {}
    for name, figure in figures.items():
        buffer = io.BytesIO()
        figure.tight_layout()
        figure.savefig(buffer, format="png", dpi=100)
        plt.close(figure)
        encoded[name] = buffer.getvalue()
    return encoded


def best_worst_sheet(records: list[dict], count: int = 4) -> np.ndarray | None:
    """Rows of (image, visible mask, vote, ground truth) for the ``count`` best then ``count`` worst objects by vote
    IoU, ``(H, W, 3)`` uint8, from the records' image files and masks; None when no record names its image."""
    from ..io import decode_segmentation, load_image
    from ..preview import panel_row, stack_rows

    shown = [r for r in records if r.get("image")]
    ranked = sorted(shown, key=lambda r: r["ious"]["vote"], reverse=True)
    chosen = ranked[:count] + ranked[-count:] if len(ranked) > 2 * count else ranked
    rows = []
    for record in chosen:
        image = load_image(record["image"])
        keys = ("visible_rle", "vote_rle", "amodal_rle")
        rows.append(panel_row([image, *(decode_segmentation(record[k], *image.shape[:2]) for k in keys)], 96))
    return stack_rows(rows) if rows else None


def write_report(folder: str | os.PathLike, result: dict, records: list[dict]) -> Path:
    """Write the report files (module docstring) to ``folder``, atomically each; returns the page's path."""
    folder = Path(folder)
    title = "Amodal segmentation evaluation"
    files = {
        folder / "result.json": json_bytes(result),
        folder / RECORDS: "".join(json.dumps(record) + "\n" for record in records).encode(),
        folder / "report.md": markdown(result, title).encode(),
        folder / "index.html": page(result, title).encode(),
        **{folder / name: data for name, data in plots(result).items()},
    }
    sheet = best_worst_sheet(records)
    if sheet is not None:
        files[folder / "best_worst.png"] = png_bytes(sheet)
    write_files_atomic(files)
    return folder / "index.html"
