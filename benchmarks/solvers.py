"""Quality against sampling steps for each sampler: vote and single-sample mIoU on held-out objects, several seeds.

    python benchmarks/solvers.py --data data/heldout-ood --limit 60 --samples 3 \
        --schedulers official-ddim dpmpp-2m unipc --steps 4 8 20 --seeds 0 1 [--plot solvers.png] [--json FILE]

Prints a markdown table (mean over seeds; the spread between seeds after +-) and writes the curve as a plot.
Model: the embedded demonstration model unless --model names another.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from p2g3d import AmodalCompleter
from p2g3d.evaluation.amodal import evaluate_amodal
from p2g3d.evaluation.examples import FolderExamples
from p2g3d.schedulers import SCHEDULERS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="pix2gestalt-format held-out folder")
    parser.add_argument("--model", default=None)
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--schedulers", nargs="+", default=["official-ddim", "dpmpp-2m", "unipc"], choices=SCHEDULERS)
    parser.add_argument("--steps", type=int, nargs="+", default=[4, 8, 20])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--plot", default=None, help="write the curve here (PNG)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    base = AmodalCompleter.from_pretrained(args.model, num_samples=args.samples)
    rows = []
    for name in args.schedulers:
        for steps in args.steps:
            completer = AmodalCompleter(
                base.pipeline, num_samples=args.samples, num_inference_steps=steps, scheduler=name
            )
            scores, started = [], time.perf_counter()
            for seed in args.seeds:
                result = evaluate_amodal(completer, FolderExamples(args.data), seed=seed, limit=args.limit)
                scores.append((result["miou_vote"], result["miou_single"]))
            seconds = (time.perf_counter() - started) / (len(args.seeds) * args.limit)
            vote, single = np.array(scores).T
            rows.append(
                {
                    "scheduler": name,
                    "steps": steps,
                    "vote": vote.tolist(),
                    "single": single.tolist(),
                    "seconds_per_object": seconds,
                }
            )
            print(f"{name} {steps} steps: vote {vote.mean():.1f}, single {single.mean():.1f}", flush=True)
    print(
        f"\n{args.limit} objects of {args.data}, {args.samples} samples, seeds {args.seeds}; mean (+- half the "
        "spread between seeds)\n"
    )
    print("| sampler | steps | vote mIoU | single mIoU | s / object |\n|---|---:|---:|---:|---:|")
    for row in rows:
        vote, single = np.array(row["vote"]), np.array(row["single"])
        spread = lambda v: (v.max() - v.min()) / 2
        print(
            f"| {row['scheduler']} | {row['steps']} | {vote.mean():.1f} +- {spread(vote):.1f} | "
            f"{single.mean():.1f} +- {spread(single):.1f} | {row['seconds_per_object']:.2f} |"
        )
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(figsize=(6, 4))
        for name in args.schedulers:
            mine = [r for r in rows if r["scheduler"] == name]
            axes.plot([r["steps"] for r in mine], [np.mean(r["vote"]) for r in mine], marker="o", label=f"{name}, vote")
            single = [np.mean(r["single"]) for r in mine]
            axes.plot([r["steps"] for r in mine], single, marker="x", linestyle="--", label=f"{name}, single")
        axes.set(xlabel="sampling steps", ylabel="mIoU (%)", title="Quality against steps")
        axes.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(args.plot, dpi=100)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(rows, file, indent=2)


if __name__ == "__main__":
    main()
