"""The ``p2g3d`` command.

``p2g3d convert CKPT OUT_DIR``: official checkpoint -> diffusers folder.
``p2g3d complete IMAGE --mask MASK [--mask MASK ...] --model DIR -o OUT_DIR``: amodal completion of each object.
``p2g3d views IMAGE [--mask MASK] --model DIR -o OUT_DIR``: Zero-1-to-3 novel views with ``cameras.json``.
``p2g3d reconstruct VIEWS_DIR -o mesh.glb [--method carve|pytorch3d|nerfstudio]``: multi-view mesh reconstruction.
``p2g3d evaluate PRED GT [--protocol syncdreamer|triposr|raw]``: 3D metrics as JSON.
``p2g3d demo [-o OUT]``: the main job end to end on synthetic scenes with the embedded model.
``p2g3d make-data OUT --count N``: synthetic training / evaluation data in pix2gestalt's folder format.
``p2g3d train --data DIR -o RUN [--init scratch|MODEL] [--stage diffusion|vae]``: train or fine-tune.
``p2g3d eval-amodal --model DIR --data DIR | --cocoa FILE --images DIR``: amodal mIoU with baselines.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from safetensors import SafetensorError

from .checkpoint import UnsafeCheckpointError

logger = logging.getLogger("p2g3d")

USER_ERRORS = (
    ValueError, TypeError, FileNotFoundError, FileExistsError, ImportError, UnsafeCheckpointError, SafetensorError,
)  # fmt: skip


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _add_sampling_arguments(command: argparse.ArgumentParser, *, samples: int, guidance: float, unit: str) -> None:
    """Options shared by the commands that sample a diffusion model."""
    command.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    command.add_argument("--samples", type=_positive_int, default=samples, help=f"samples per {unit} (default {samples})")
    command.add_argument("--steps", type=_positive_int, default=50, help="DDIM steps (default 50)")
    command.add_argument("--guidance", type=float, default=guidance, help=f"guidance scale (default {guidance})")
    command.add_argument("--eta", type=float, default=1.0, help="DDIM eta (default 1.0)")
    command.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    command.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda if available)")
    command.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default=None, help="default fp16 on cuda")
    command.add_argument("--batch-size", type=_positive_int, default=8, help=f"{unit} samples per model call")


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
    convert.add_argument(
        "--unet-weights", choices=("ema", "raw"), default="ema",
        help="EMA (default, what official inference uses) or raw, for checkpoints saved without EMA",
    )  # fmt: skip

    complete = commands.add_parser("complete", help="complete occluded objects in an image")
    complete.add_argument("image", type=Path, help="scene image (8-bit PNG / JPEG)")
    complete.add_argument("--mask", type=Path, action="append", required=True, help="visible mask (repeatable)")
    complete.add_argument("--model", default=None, help="model folder or hub id (default: the embedded demo model)")
    _add_sampling_arguments(complete, samples=4, guidance=2.0, unit="object")
    complete.add_argument("--framing", choices=("squash", "pad"), default="squash", help="default squash (official)")
    complete.add_argument("--mask-rule", choices=("rgb", "official"), default="rgb", help="gray rule for masks")

    views = commands.add_parser("views", help="Zero-1-to-3 novel views of an object, with cameras.json")
    views.add_argument("image", type=Path, help="RGBA cut-out (alpha = object), or RGB with --mask")
    views.add_argument("--mask", type=Path, default=None, help="object mask for an RGB image")
    views.add_argument("--model", required=True, help="converted Zero-1-to-3 folder, community folder or hub id")
    _add_sampling_arguments(views, samples=1, guidance=3.0, unit="view")
    views.add_argument("--num-views", type=_positive_int, default=8, help="views evenly spaced in azimuth (default 8)")
    views.add_argument("--input-elevation", type=float, default=0.0, help="elevation of the input view, degrees")
    views.add_argument("--elevation", type=float, default=None, help="elevation of the views (default: input's)")
    views.add_argument("--radius", type=float, default=1.5, help="camera distance (default 1.5)")

    reconstruct = commands.add_parser("reconstruct", help="mesh from posed, masked views (a cameras.json folder)")
    reconstruct.add_argument("views_dir", type=Path, help="folder with cameras.json, images and masks")
    reconstruct.add_argument("-o", "--output", type=Path, required=True, help="mesh file: .glb, .obj or .ply")
    reconstruct.add_argument("--method", choices=("carve", "pytorch3d", "nerfstudio"), default="carve")
    reconstruct.add_argument("--resolution", type=_positive_int, default=96, help="carving voxels per side")
    reconstruct.add_argument("--bound", type=float, default=0.6, help="half side of the carving box (default 0.6)")
    reconstruct.add_argument("--iterations", type=_positive_int, default=None, help="pytorch3d / nerfstudio steps")
    reconstruct.add_argument("--device", default="cpu", help="torch / nerfstudio device (default cpu)")

    evaluate = commands.add_parser("evaluate", help="Chamfer, F-score, volume IoU, normal consistency as JSON")
    evaluate.add_argument("pred", type=Path, help="predicted mesh")
    evaluate.add_argument("gt", type=Path, help="ground-truth mesh")
    evaluate.add_argument("--protocol", choices=("syncdreamer", "triposr", "raw"), default="syncdreamer")
    evaluate.add_argument("--points", type=_positive_int, default=20000, help="surface samples per mesh")
    evaluate.add_argument("--volume-resolution", type=_positive_int, default=64, help="volume IoU grid size")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("-o", "--output", type=Path, default=None, help="also write the JSON here")

    demo = commands.add_parser("demo", help="the main job end to end on synthetic scenes (embedded model, CPU)")
    demo.add_argument("-o", "--output", type=Path, default=Path("p2g3d-demo"), help="output folder")
    demo.add_argument("--scenes", type=_positive_int, default=2)
    demo.add_argument("--model", default=None, help="model folder (default: the embedded demo model)")
    demo.add_argument("--steps", type=_positive_int, default=20, help="DDIM steps (default 20)")
    demo.add_argument("--samples", type=_positive_int, default=3, help="samples per object (default 3)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--device", default=None)

    make_data = commands.add_parser("make-data", help="synthetic occluded-object pairs in pix2gestalt's format")
    make_data.add_argument("output", type=Path, help="dataset folder to write")
    make_data.add_argument("--count", type=_positive_int, default=1000)
    make_data.add_argument("--seed", type=int, default=0)
    make_data.add_argument("--image-size", type=_positive_int, default=64)

    train = commands.add_parser("train", help="train or fine-tune a pix2gestalt model (resumes automatically)")
    train.add_argument("--data", type=Path, required=True, help="pix2gestalt-format dataset folder")
    train.add_argument("-o", "--output", type=Path, required=True, help="run folder (checkpoints, log, model/)")
    train.add_argument("--init", default="scratch", help="'scratch' (small model) or a model folder to fine-tune")
    train.add_argument("--stage", choices=("diffusion", "vae"), default="diffusion")
    train.add_argument("--steps", type=_positive_int, default=1000)
    train.add_argument("--batch-size", type=_positive_int, default=8)
    train.add_argument("--lr", type=float, default=1e-4, help="UNet learning rate (cc_projection gets 10x)")
    train.add_argument("--warmup", type=int, default=100)
    train.add_argument("--ema-decay", type=float, default=0.9999)
    train.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no")
    train.add_argument("--checkpoint-every", type=_positive_int, default=500)
    train.add_argument("--image-size", type=_positive_int, default=64)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--target-latent", choices=("sample", "mode"), default="sample",
                       help="VAE posterior sample (official) or mean as the target latent")  # fmt: skip
    train.add_argument("--calibrate-latent-scale", action="store_true",
                       help="set the VAE scaling factor to 1 / std of the latents (for VAEs trained from scratch)")  # fmt: skip

    eval_amodal = commands.add_parser("eval-amodal", help="amodal mIoU: single, vote, best-of-N and baselines")
    eval_amodal.add_argument("--model", default=None, help="model folder (default: the embedded demo model)")
    eval_amodal.add_argument("--data", type=Path, default=None, help="pix2gestalt-format dataset folder")
    eval_amodal.add_argument("--cocoa", type=Path, default=None, help="COCOA / BSDS-A style annotation json")
    eval_amodal.add_argument("--images", type=Path, default=None, help="image root for --cocoa")
    eval_amodal.add_argument("--samples", type=_positive_int, default=3, help="samples per object (default 3)")
    eval_amodal.add_argument("--steps", type=_positive_int, default=50)
    eval_amodal.add_argument("--limit", type=_positive_int, default=None, help="evaluate at most this many objects")
    eval_amodal.add_argument("--seed", type=int, default=0)
    eval_amodal.add_argument("--device", default=None)
    eval_amodal.add_argument("-o", "--output", type=Path, default=None, help="also write the JSON here")
    return parser


def run_convert(args: argparse.Namespace) -> int:
    from .convert import convert_checkpoint

    output = convert_checkpoint(
        args.checkpoint, args.output_dir, args.config, args.dtype, args.overwrite, unet_weights=args.unet_weights
    )
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


def _load_object(image_path: Path, mask_path: Path | None):
    """An RGBA cut-out, or an RGB image with a mask file -> ``(rgb, mask)``."""
    import numpy as np
    import PIL.Image

    from .io import load_image, load_mask

    if mask_path is not None:
        rgb, mask = load_image(image_path), load_mask(mask_path)
        if mask.shape != rgb.shape[:2]:
            raise ValueError(f"mask {mask_path} is {mask.shape[0]}x{mask.shape[1]} but the image is {rgb.shape[0]}x{rgb.shape[1]}")
        return rgb, mask
    load_image(image_path)  # validates the file (readable, 8-bit)
    with PIL.Image.open(image_path) as image:
        if "A" not in image.getbands():
            raise ValueError(f"{image_path} has no alpha channel: pass the object's mask with --mask")
        rgba = np.asarray(image.convert("RGBA"))
    mask = rgba[..., 3] > 127
    if not mask.any():
        raise ValueError(f"{image_path}: the alpha channel is empty (no object)")
    return load_image(image_path), mask


def run_views(args: argparse.Namespace) -> int:
    from .integrations.zero123 import NovelViewGenerator, reframe_for_zero123
    from .io import save_json, save_png

    rgb, mask = _load_object(args.image, args.mask)
    generator = NovelViewGenerator.from_pretrained(
        args.model, device=args.device, dtype=args.dtype, num_inference_steps=args.steps,
        guidance_scale=args.guidance, eta=args.eta, batch_size=args.batch_size,
    )  # fmt: skip
    elevation = args.input_elevation if args.elevation is None else args.elevation
    cameras = generator.orbit(args.num_views, elevation_deg=elevation, radius=args.radius)
    views = generator(
        (rgb, mask), cameras, input_elevation=args.input_elevation, input_radius=args.radius,
        num_samples=args.samples, seed=args.seed,
    )  # fmt: skip
    input_camera = generator.input_camera(args.input_elevation, args.radius)
    save_png(args.output / "input.png", reframe_for_zero123((rgb, mask), generator.size))
    entries = []
    for view in views:
        stem = f"view_{view.view_index:02d}_s{view.sample_index}"
        save_png(args.output / f"{stem}.png", view.image)
        save_png(args.output / f"{stem}_mask.png", view.mask)
        polar, azimuth, radius = view.relative_pose
        entries.append(
            {
                "file": f"{stem}.png", "mask": f"{stem}_mask.png", "view": view.view_index, "sample": view.sample_index,
                "camera": view.camera.to_dict(),
                "zero123_pose": {"delta_polar_deg": polar, "delta_azimuth_deg": azimuth, "delta_radius": radius},
            }
        )  # fmt: skip
    save_json(
        args.output / "cameras.json",
        {
            "convention": input_camera.to_dict()["convention"],
            "input": {"file": "input.png", "camera": input_camera.to_dict()},
            "settings": {"steps": args.steps, "guidance": args.guidance, "eta": args.eta, "seed": args.seed,
                         "samples": args.samples, "input_elevation": args.input_elevation, "elevation": elevation,
                         "radius": args.radius},
            "views": entries,
        },
    )  # fmt: skip
    logger.info("wrote %d view(s) to %s", len(views), args.output)
    return 0


def run_reconstruct(args: argparse.Namespace) -> int:
    from .export import FORMATS, export_mesh
    from .integrations.base import load_views

    if args.output.suffix.lower().lstrip(".") not in FORMATS:
        raise ValueError(f"output must end in one of {', '.join('.' + f for f in FORMATS)}, got {args.output.name}")
    views = load_views(args.views_dir)
    bounds = ((-args.bound,) * 3, (args.bound,) * 3)
    if args.method == "carve":
        from .integrations.carving import VisualHullReconstructor

        backend = VisualHullReconstructor(resolution=args.resolution, bounds=bounds)
    elif args.method == "pytorch3d":
        from .integrations.pytorch3d_fit import SilhouetteFitReconstructor, import_pytorch3d

        import_pytorch3d()
        backend = SilhouetteFitReconstructor(iterations=args.iterations or 200, bounds=bounds, device=args.device)
    else:
        from .integrations.nerfstudio import NerfstudioReconstructor

        backend = NerfstudioReconstructor(max_iterations=args.iterations or 5000, device=args.device)
    export_mesh(backend.reconstruct(views), args.output)
    logger.info("wrote %s from %d views", args.output, len(views))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    import json

    from .io import save_json
    from .metrics import evaluate

    result = evaluate(
        args.pred, args.gt, args.protocol, num_points=args.points, volume_resolution=args.volume_resolution,
        seed=args.seed,
    )  # fmt: skip
    if args.output is not None:
        save_json(args.output, result)
    print(json.dumps({k: v for k, v in result.items() if k != "alignment"}, indent=2))
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo as demo

    table = demo(
        args.output, scenes=args.scenes, model=args.model, steps=args.steps, samples=args.samples, seed=args.seed,
        device=args.device,
    )  # fmt: skip
    print(table)
    print(f"\nmeshes (.glb), previews and metrics in {args.output}/")
    return 0


def run_make_data(args: argparse.Namespace) -> int:
    from .data import write_synthetic_dataset

    write_synthetic_dataset(args.output, args.count, seed=args.seed, image_size=args.image_size)
    logger.info("wrote %d samples to %s", args.count, args.output)
    return 0


def run_train(args: argparse.Namespace) -> int:
    from .training import TrainConfig, train

    model = train(
        TrainConfig(
            data=str(args.data), output_dir=str(args.output), init=args.init, stage=args.stage, steps=args.steps,
            batch_size=args.batch_size, learning_rate=args.lr, warmup_steps=args.warmup, ema_decay=args.ema_decay,
            mixed_precision=args.mixed_precision, checkpoint_every=args.checkpoint_every, image_size=args.image_size,
            seed=args.seed, target_latent=args.target_latent, calibrate_latent_scale=args.calibrate_latent_scale,
        )  # fmt: skip
    )
    logger.info("model saved to %s", model)
    return 0


def run_eval_amodal(args: argparse.Namespace) -> int:
    import json

    from .amodal_eval import evaluate_amodal, examples_from_cocoa, examples_from_folder
    from .completer import AmodalCompleter
    from .io import save_json

    if (args.data is None) == (args.cocoa is None):
        raise ValueError("give exactly one of --data (dataset folder) or --cocoa (annotation file, with --images)")
    if args.cocoa is not None and args.images is None:
        raise ValueError("--cocoa needs --images (the folder its file names are relative to)")
    examples = examples_from_folder(args.data) if args.data else examples_from_cocoa(args.cocoa, args.images)
    completer = AmodalCompleter.from_pretrained(
        args.model, device=args.device, num_samples=args.samples, num_inference_steps=args.steps
    )
    result = evaluate_amodal(completer, examples, seed=args.seed, limit=args.limit)
    if args.output is not None:
        save_json(args.output, result)
    print(json.dumps(result, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    handlers = {
        "convert": run_convert, "complete": run_complete, "views": run_views, "reconstruct": run_reconstruct,
        "evaluate": run_evaluate, "make-data": run_make_data, "demo": run_demo, "train": run_train, "eval-amodal": run_eval_amodal,
    }  # fmt: skip
    try:
        return handlers[args.command](args)
    except USER_ERRORS as error:
        message = " ".join(str(error).split())
        print(f"p2g3d {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
