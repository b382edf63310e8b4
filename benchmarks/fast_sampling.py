"""Fast sampling in one table from one run: the teacher at 50 / 20 / 10 official DDIM steps, the best multistep
solver, guidance on a limited interval, and the distilled few-step student; quality and time per object.

    python benchmarks/fast_sampling.py --data data/heldout-ood --limit 60 --samples 3 [--seeds 0 1]
        [--teacher embedded] [--student embedded-fast] [--pack 4] [--device cuda --batch-size 48 --pack 16]
        [--json FILE] [--plot PNG]

Every row scores the same objects with the same seeds (vote and single-sample mIoU, mean over seeds); "UNet rows /
sample" counts the rows the UNet evaluated per sample (classifier-free guidance doubles them), "s / object" is the
wall time per object with its samples (model loading excluded, one warm-up pack first; objects are completed
``--pack`` at a time, sharing batches, as ``p2g3d eval-amodal`` does), "samples / s" the throughput. Runs on a GPU as
it is (``--device cuda``). ``--plot`` draws vote mIoU against the UNet rows per sample.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from p2g3d import AmodalCompleter
from p2g3d.evaluation.amodal import evaluate_amodal
from p2g3d.evaluation.examples import FolderExamples

# (label, model role, completion settings)
ROWS = [
    ("teacher, official DDIM", "teacher", {"num_inference_steps": 50}),
    ("teacher, official DDIM", "teacher", {"num_inference_steps": 20}),
    ("teacher, official DDIM", "teacher", {"num_inference_steps": 10}),
    ("teacher, DPM-Solver++ 2M (best solver)", "teacher", {"num_inference_steps": 8, "scheduler": "dpmpp-2m"}),
    ("teacher, DPM-Solver++ 2M (best solver)", "teacher", {"num_inference_steps": 4, "scheduler": "dpmpp-2m"}),
    (
        "teacher, DDIM, guidance only for t/1000 in [0.5, 1]",
        "teacher",
        {"num_inference_steps": 20, "guidance_interval": (0.5, 1.0)},
    ),
    (
        "teacher, DDIM, guidance only for t/1000 in [0.2, 0.8]",
        "teacher",
        {"num_inference_steps": 20, "guidance_interval": (0.2, 0.8)},
    ),
    ("student (LCM), guidance folded in", "student", {"num_inference_steps": 4}),
    ("student (LCM), guidance folded in", "student", {"num_inference_steps": 3}),
    ("student (LCM), guidance folded in", "student", {"num_inference_steps": 2}),
    ("student (LCM), guidance folded in", "student", {"num_inference_steps": 1}),
]


class RowCounter:
    """Counts the rows the UNet evaluates (a forward hook)."""

    def __init__(self, unet):
        self.rows = 0
        self.handle = unet.register_forward_hook(self._count)

    def _count(self, module, inputs, output):
        self.rows += inputs[0].shape[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="pix2gestalt-format held-out folder")
    parser.add_argument("--teacher", default="embedded")
    parser.add_argument("--student", default="embedded-fast")
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="pairs per call (default: the completer's, 16 UNet rows)"
    )
    parser.add_argument(
        "--pack", type=int, default=4, help="objects per completer call, as `p2g3d eval-amodal --pack` (default 4)"
    )
    parser.add_argument("--json", default=None)
    parser.add_argument("--plot", default=None, help="write quality against UNet rows per sample here (PNG)")
    args = parser.parse_args()
    if args.pack < 1:
        parser.error(f"--pack must be at least 1, got {args.pack}")

    models = {
        role: AmodalCompleter.from_pretrained(name, device=args.device, num_samples=args.samples).pipeline
        for role, name in (("teacher", args.teacher), ("student", args.student))
    }
    examples = FolderExamples(args.data)
    results = []
    for label, role, settings in ROWS:
        completer = AmodalCompleter(models[role], num_samples=args.samples, batch_size=args.batch_size, **settings)
        # warm-up (lazy initialisation, caches)
        evaluate_amodal(completer, examples, seed=99, limit=args.pack, pack=args.pack)
        counter = RowCounter(completer.pipeline.unet)
        scores, seconds = [], 0.0
        for seed in args.seeds:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            started = time.perf_counter()
            result = evaluate_amodal(completer, examples, seed=seed, limit=args.limit, pack=args.pack)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            seconds += time.perf_counter() - started
            scores.append((result["miou_vote"], result["miou_single"]))
        counter.handle.remove()
        objects = result["objects"] * len(args.seeds)
        vote, single = np.array(scores).T
        row = {
            "method": label,
            "steps": completer.settings.num_inference_steps,
            "vote": vote.tolist(),
            "single": single.tolist(),
            "unet_rows_per_sample": counter.rows / (objects * args.samples),
            "seconds_per_object": seconds / objects,
            "samples_per_second": objects * args.samples / seconds,
        }
        results.append(row)
        print(
            f"{label}, {row['steps']} steps: vote {vote.mean():.1f}, {row['seconds_per_object']:.3f} s/object",
            flush=True,
        )
    device = models["teacher"].device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"\n{args.limit} objects of {args.data}, {args.samples} samples, seeds {args.seeds}, "
        f"{args.pack} objects per call, batch {args.batch_size or '16 UNet rows'}, "
        f"{name} ({torch.get_num_threads()} threads)\n"
    )
    print(
        "| method | steps | vote mIoU | single mIoU | UNet rows / sample | s / object | samples / s |\n"
        "|---|---:|---:|---:|---:|---:|---:|"
    )
    for row in results:
        print(
            f"| {row['method']} | {row['steps']} | {np.mean(row['vote']):.1f} | {np.mean(row['single']):.1f} | "
            f"{row['unet_rows_per_sample']:.0f} | {row['seconds_per_object']:.3f} | {row['samples_per_second']:.1f} |"
        )
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"device": name, "arguments": vars(args), "rows": results}, file, indent=2)
    if args.plot:
        plot(results, args.plot, title=f"{args.limit} held-out objects, {args.samples} samples, seeds {args.seeds}")


def short_label(row: dict) -> str:
    """A row's name on the plot: "DDIM 50", "DPM++ 8", "DDIM 20, guided [0.5, 1]", "student 4"."""
    method, steps = row["method"], row["steps"]
    if method.startswith("student"):
        return f"student {steps}"
    if "DPM" in method:
        return f"DPM++ {steps}"
    if " in [" in method:
        return f"DDIM {steps}, guided {method[method.index(' in [') + 4 :]}"
    return f"DDIM {steps}"


def plot(results: list[dict], path: str, title: str) -> None:
    """Vote mIoU (mean over seeds, bars: min to max) against UNet rows per sample, log scale, one point a row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for row in results:
        vote = np.array(row["vote"])
        student = row["method"].startswith("student")
        axes.errorbar(
            row["unet_rows_per_sample"],
            vote.mean(),
            yerr=[[vote.mean() - vote.min()], [vote.max() - vote.mean()]],
            marker="*" if student else "o",
            markersize=10 if student else 6,
            color="tab:red" if student else "tab:blue",
            capsize=3,
        )
        axes.annotate(
            short_label(row),
            (row["unet_rows_per_sample"], vote.mean()),
            textcoords="offset points",
            xytext=(6, 8 if student and row["steps"] % 2 else -12),
            fontsize=8,
        )
    axes.set_xscale("log")
    axes.set_xlabel("UNet rows per sample (log scale; guidance doubles a step)")
    axes.set_ylabel("vote mIoU (%)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
