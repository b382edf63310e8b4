"""The ``p2g3d`` command.

``p2g3d convert CKPT OUT_DIR``: official checkpoint -> diffusers folder.
``p2g3d complete IMAGE --mask MASK [--mask MASK ...] --model DIR -o OUT_DIR``: amodal completion of each object.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from safetensors import SafetensorError

from .checkpoint import UnsafeCheckpointError

logger = logging.getLogger("p2g3d")

USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FileExistsError, UnsafeCheckpointError, SafetensorError)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="p2g3d", description="Amodal completion (pix2gestalt) for 3D pipelines.")
    parser.add_argument("--version", action="version", version=f"p2g3d {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True)

    convert = commands.add_parser("convert", help="convert an official pix2gestalt checkpoint to a diffusers folder")
    convert.add_argument("checkpoint", type=Path, help="official Lightning .ckpt (e.g. epoch=000005.ckpt)")
    convert.add_argument("output_dir", type=Path, help="folder to write (diffusers layout, safetensors)")
    convert.add_argument("--config", type=Path, default=None, help="official yaml (default: the packaged one)")
    convert.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32", help="weights dtype")
    convert.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")

    complete = commands.add_parser("complete", help="complete occluded objects in an image")
    complete.add_argument("image", type=Path, help="scene image (8-bit PNG / JPEG)")
    complete.add_argument("--mask", type=Path, action="append", required=True, help="visible mask (repeatable)")
    complete.add_argument("--model", required=True, help="converted model folder or hub id")
    complete.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    complete.add_argument("--samples", type=_positive_int, default=4, help="samples per object (default 4)")
    complete.add_argument("--steps", type=_positive_int, default=50, help="DDIM steps (default 50)")
    complete.add_argument("--guidance", type=float, default=2.0, help="guidance scale (default 2.0)")
    complete.add_argument("--eta", type=float, default=1.0, help="DDIM eta (default 1.0)")
    complete.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    complete.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda if available)")
    complete.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default=None, help="default fp16 on cuda")
    complete.add_argument("--framing", choices=("squash", "pad"), default="squash", help="default squash (official)")
    complete.add_argument("--mask-rule", choices=("rgb", "official"), default="rgb", help="gray rule for masks")
    complete.add_argument("--batch-size", type=_positive_int, default=8, help="samples per model call")
    return parser


def run_convert(args: argparse.Namespace) -> int:
    from .convert import convert_checkpoint

    output = convert_checkpoint(args.checkpoint, args.output_dir, args.config, args.dtype, args.overwrite)
    logger.info("wrote %s", output)
    return 0


def run_complete(args: argparse.Namespace) -> int:
    from .completer import AmodalCompleter, split_masks
    from .io import load_image, load_mask, save_json, save_png
    from .preview import preview_sheet

    image = load_image(args.image)
    masks = [load_mask(path) for path in args.mask]
    split_masks(masks, *image.shape[:2])  # validate every mask before loading the model
    completer = AmodalCompleter.from_pretrained(
        args.model,
        device=args.device,
        dtype=args.dtype,
        num_samples=args.samples,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance,
        eta=args.eta,
        framing=args.framing,
        mask_rule=args.mask_rule,
        batch_size=args.batch_size,
    )
    results = completer(image, masks, seed=args.seed)
    summary = {
        "image": str(args.image),
        "model": str(args.model),
        "settings": {
            "samples": args.samples, "steps": args.steps, "guidance": args.guidance, "eta": args.eta,
            "seed": args.seed, "framing": args.framing, "mask_rule": args.mask_rule,
        },
        "objects": [],
    }  # fmt: skip
    for result, mask_path in zip(results, args.mask):
        stem = f"object_{result.label:02d}"
        files = {
            "whole": save_png(args.output / f"{stem}_whole.png", result.whole_rgb),
            "rgba": save_png(args.output / f"{stem}_rgba.png", result.whole_rgba),
            "amodal_mask": save_png(args.output / f"{stem}_amodal_mask.png", result.amodal_mask),
            "preview": save_png(args.output / f"{stem}_preview.png", preview_sheet(image, result)),
        }
        summary["objects"].append(
            {
                "label": result.label,
                "visible_mask": str(mask_path),
                "files": {name: path.name for name, path in files.items()},
                "amodal_box_xyxy": list(result.amodal_box),
                "visible_area": int(result.visible_mask.sum()),
                "amodal_area": int(result.amodal_mask.sum()),
                "occluded_fraction": round(result.occluded_fraction, 4),
                "confidence": round(result.confidence, 4),
                "best_sample": result.best_sample,
            }
        )
    save_json(args.output / "summary.json", summary)
    logger.info("wrote %d object(s) to %s", len(results), args.output)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    handlers = {"convert": run_convert, "complete": run_complete}
    try:
        return handlers[args.command](args)
    except USER_ERRORS as error:
        message = " ".join(str(error).split())
        print(f"p2g3d {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
