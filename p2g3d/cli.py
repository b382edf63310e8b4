"""The ``p2g3d`` command: a thin layer over the library.

``p2g3d convert CKPT OUT_DIR``: official checkpoint -> diffusers folder.
``p2g3d batch INPUT -o OUT``: amodal completion over a dataset (resumable; COCO-style RLE output).
``p2g3d complete IMAGE --mask MASK [--mask MASK ...] [--model DIR] -o OUT_DIR``: amodal completion of each object.
``p2g3d views IMAGE [--mask MASK] --model DIR -o OUT_DIR``: Zero-1-to-3 novel views in a views folder.
``p2g3d reconstruct VIEWS_DIR -o mesh.glb [--method NAME]``: multi-view mesh reconstruction by a registered backend.
``p2g3d evaluate PRED GT [--protocol syncdreamer|triposr|raw]``: 3D metrics as JSON.
``p2g3d demo [-o OUT]``: the main job end to end on synthetic scenes with the embedded model.
``p2g3d make-data OUT --count N``: synthetic training / evaluation data in pix2gestalt's folder format.
``p2g3d train --data DIR -o RUN [--init scratch|MODEL] [--stage diffusion|vae]``: train or fine-tune.
``p2g3d eval-amodal [--model DIR] --data DIR | --cocoa FILE --images DIR``: amodal mIoU with baselines.

Options that mirror library settings are generated from the settings dataclasses (their fields' ``flag`` and
``help`` metadata) or take the library function's own default, so the command line never drifts from the library.
Mistakes of the user (bad input, missing files, missing optional packages) print one line and exit with status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import logging
import sys
import typing
from pathlib import Path

from safetensors import SafetensorError

from .errors import MissingDependencyError

logger = logging.getLogger("p2g3d")

USER_ERRORS = (ValueError, OSError, MissingDependencyError, SafetensorError)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default, except where there is none to show (required, None, off)."""

    def _get_help_string(self, action):
        if action.required or action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def library_default(function, name: str):
    """The default of ``function``'s parameter ``name``: command-line defaults come from the library."""
    return inspect.signature(function).parameters[name].default


def add_settings_arguments(parser: argparse.ArgumentParser, settings_class) -> None:
    """One option per field of the dataclass ``settings_class`` that has a ``flag`` in its metadata (type, default,
    help and choices from the field)."""
    hints = typing.get_type_hints(settings_class)
    for spec in dataclasses.fields(settings_class):
        flag = spec.metadata.get("flag")
        if flag is None:
            continue
        kind = spec.metadata.get("type", hints[spec.name])
        names = ["-o", flag] if flag == "--output" else [flag]
        options = {"dest": spec.name, "help": spec.metadata.get("help", "")}
        if kind is bool:
            parser.add_argument(*names, action="store_true", **options)
            continue
        if spec.metadata.get("required"):
            options["required"] = True
        else:
            options["default"] = spec.default
        if "choices" in spec.metadata:
            options["choices"] = spec.metadata["choices"]
        parser.add_argument(*names, type=kind, **options)  # the dataclass validates the value


def settings_from_arguments(settings_class, args: argparse.Namespace) -> dict:
    """The fields of ``settings_class`` that :func:`add_settings_arguments` added, read back from ``args``."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(settings_class) if f.metadata.get("flag")}


def _add_runtime_arguments(command: argparse.ArgumentParser, seed_help: str = "random seed") -> None:
    from .runtime import DTYPES

    command.add_argument("--seed", type=int, default=0, help=seed_help)
    command.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda if available)")
    command.add_argument(
        "--dtype", choices=tuple(DTYPES), default=None, help="weights dtype (default: fp16 on cuda, else fp32)"
    )


def _add_compile_argument(command: argparse.ArgumentParser) -> None:
    from .acceleration import COMPILE_MODES

    command.add_argument(
        "--compile",
        choices=COMPILE_MODES,
        default=None,
        help="torch.compile the UNet (checked against eager on load; reduce-overhead adds CUDA graphs); default eager",
    )


def _add_batch(command: argparse.ArgumentParser) -> None:
    from .jobs.batch import ENGINES
    from .jobs.batch import run_batch as run_batch_job
    from .sampling import CompletionSettings

    command.add_argument(
        "input", type=Path, help="folder of images with NAME_mask*.png, a .jsonl manifest, or a COCO-style .json"
    )
    command.add_argument("--images", type=Path, default=None, help="image folder of a COCO-style annotation file")
    command.add_argument("-o", "--output", type=Path, required=True, help="output folder (a rerun resumes it)")
    command.add_argument("--model", default=None, help="model folder or hub id (default: the embedded demo model)")
    command.add_argument(
        "--engine", choices=ENGINES, default="in-process", help="accelerate: under `accelerate launch`"
    )
    command.add_argument(
        "--pack",
        type=_positive_int,
        default=library_default(run_batch_job, "pack"),
        help="items per completer call: their objects and samples share the model's batches",
    )
    add_settings_arguments(command, CompletionSettings)
    _add_runtime_arguments(command, "run seed; each item's seed derives from it and the item id")
    _add_compile_argument(command)


def _add_convert(command: argparse.ArgumentParser) -> None:
    from .convert import UNET_WEIGHTS, convert_checkpoint
    from .runtime import DTYPES

    command.add_argument(
        "checkpoint",
        type=Path,
        help="official Lightning .ckpt: pix2gestalt (epoch=000005.ckpt) or Zero-1-to-3 (105000.ckpt, zero123-xl.ckpt)",
    )
    command.add_argument("output_dir", type=Path, help="folder to write (diffusers layout, safetensors)")
    command.add_argument("--config", type=Path, default=None, help="official yaml (default: the packaged one)")
    dtype = library_default(convert_checkpoint, "dtype")
    command.add_argument("--dtype", choices=tuple(DTYPES), default=dtype, help="weights dtype")
    command.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    command.add_argument(
        "--unet-weights",
        choices=UNET_WEIGHTS,
        default=library_default(convert_checkpoint, "unet_weights"),
        help="EMA (default, what official inference uses) or raw, for checkpoints saved without EMA",
    )


def _add_complete(command: argparse.ArgumentParser) -> None:
    from .sampling import CompletionSettings

    command.add_argument("image", type=Path, help="scene image (8-bit PNG / JPEG)")
    command.add_argument("--mask", type=Path, action="append", required=True, help="visible mask (repeatable)")
    command.add_argument("--model", default=None, help="model folder or hub id (default: the embedded demo model)")
    command.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    add_settings_arguments(command, CompletionSettings)
    _add_runtime_arguments(command)
    _add_compile_argument(command)


def _add_image_to_3d(command: argparse.ArgumentParser) -> None:
    from .integrations.registry import IMAGE_TO_3D, available_backends
    from .metrics import PROTOCOLS
    from .sampling import CompletionSettings

    command.add_argument("image", type=Path, help="scene image (8-bit PNG / JPEG)")
    command.add_argument("--mask", type=Path, action="append", required=True, help="visible mask (repeatable)")
    command.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    command.add_argument(
        "--backend", choices=available_backends(IMAGE_TO_3D), default="zero123", help="image-to-3D backend"
    )
    command.add_argument("--model", default=None, help="pix2gestalt model folder or hub id (default: embedded)")
    command.add_argument(
        "--backend-model", default=None, help="the backend's model folder or hub id (default: its own)"
    )
    command.add_argument(
        "--no-complete", action="store_true", help="hand the visible cut-outs to the backend as they are"
    )
    command.add_argument("--ground-truth", type=Path, default=None, help="mesh to compare each object's mesh with")
    command.add_argument("--protocol", choices=PROTOCOLS, default="triposr", help="metric protocol for --ground-truth")
    add_settings_arguments(command, CompletionSettings)
    backend = command.add_argument_group("backend options (given only when set; a backend refuses options it lacks)")
    backend.add_argument("--views", dest="num_views", type=_positive_int, default=None, help="zero123: views per ring")
    backend.add_argument("--input-elevation", type=float, default=None, help="zero123: input view elevation, degrees")
    backend.add_argument(
        "--backend-steps", dest="backend_steps", type=_positive_int, default=None, help="backend sampling steps"
    )
    backend.add_argument("--grid-size", type=_positive_int, default=None, help="shap-e: marching-cubes grid per side")
    _add_runtime_arguments(command)


def _add_views(command: argparse.ArgumentParser) -> None:
    from .integrations.zero123 import DEFAULT_RADIUS, NovelViewGenerator, NovelViewSettings

    command.add_argument("image", type=Path, help="RGBA cut-out (alpha = object), or RGB with --mask")
    command.add_argument("--mask", type=Path, default=None, help="object mask for an RGB image")
    command.add_argument(
        "--model",
        default=None,
        help="converted Zero-1-to-3 folder, community folder or hub id (default: the embedded model)",
    )
    command.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    add_settings_arguments(command, NovelViewSettings)
    samples = library_default(NovelViewGenerator.__call__, "num_samples")
    command.add_argument("--samples", type=_positive_int, default=samples, help="samples per view")
    command.add_argument("--num-views", type=_positive_int, default=8, help="views evenly spaced in azimuth")
    command.add_argument("--input-elevation", type=float, default=0.0, help="elevation of the input view, degrees")
    command.add_argument("--elevation", type=float, default=None, help="elevation of the views (default: input's)")
    command.add_argument("--radius", type=float, default=DEFAULT_RADIUS, help="camera distance")
    _add_runtime_arguments(command)


def _add_reconstruct(command: argparse.ArgumentParser) -> None:
    from .integrations.registry import available_backends

    command.add_argument("views_dir", type=Path, help="views folder (cameras.json, images and masks)")
    command.add_argument("-o", "--output", type=Path, required=True, help="mesh file: .glb, .obj or .ply")
    command.add_argument("--method", choices=available_backends(), default="carve", help="backend")
    backend = command.add_argument_group("backend options (given only when set; a backend refuses options it lacks)")
    backend.add_argument("--resolution", type=_positive_int, default=None, help="carving voxels per side")
    backend.add_argument("--bound", type=float, default=None, help="half side of the reconstruction box")
    backend.add_argument("--iterations", type=_positive_int, default=None, help="optimisation / training steps")
    backend.add_argument("--device", default=None, help="torch / nerfstudio device")


def _add_evaluate(command: argparse.ArgumentParser) -> None:
    from .metrics import PROTOCOLS, evaluate

    command.add_argument("pred", type=Path, help="predicted mesh")
    command.add_argument("gt", type=Path, help="ground-truth mesh")
    command.add_argument("--protocol", choices=PROTOCOLS, default=library_default(evaluate, "protocol"))
    command.add_argument("--points", type=_positive_int, default=library_default(evaluate, "num_points"))
    command.add_argument(
        "--volume-resolution", type=_positive_int, default=library_default(evaluate, "volume_resolution")
    )
    command.add_argument("--seed", type=int, default=library_default(evaluate, "seed"))
    command.add_argument("-o", "--output", type=Path, default=None, help="also write the JSON here")


def _add_demo(command: argparse.ArgumentParser) -> None:
    from .jobs.demo import run_demo
    from .scenes import SCENE_STYLES

    command.add_argument("-o", "--output", type=Path, default=Path("p2g3d-demo"), help="output folder")
    command.add_argument("--model", default=None, help="model folder (default: the embedded demo model)")
    for name in ("scenes", "steps", "samples"):
        command.add_argument(f"--{name}", type=_positive_int, default=library_default(run_demo, name))
    command.add_argument("--seed", type=int, default=library_default(run_demo, "seed"))
    command.add_argument(
        "--style", choices=SCENE_STYLES, default=library_default(run_demo, "style"), help="scene style"
    )
    command.add_argument("--device", default=None)


def _add_make_data(command: argparse.ArgumentParser) -> None:
    from .training.composite import FACTOR_SETS, write_synthetic_dataset

    command.add_argument("output", type=Path, help="dataset folder to write")
    command.add_argument("--count", type=_positive_int, default=1000)
    command.add_argument("--seed", type=int, default=library_default(write_synthetic_dataset, "seed"))
    command.add_argument(
        "--image-size", type=_positive_int, default=library_default(write_synthetic_dataset, "image_size")
    )
    command.add_argument(
        "--factors",
        choices=FACTOR_SETS,
        default=library_default(write_synthetic_dataset, "factors"),
        help="'train': training factors only; 'held-out': each sample shows one factor left out of training",
    )
    command.add_argument("--overwrite", action="store_true", help="replace an earlier dataset in the output folder")


def _add_train(command: argparse.ArgumentParser) -> None:
    from .training.config import TrainConfig

    add_settings_arguments(command, TrainConfig)


def _add_eval_amodal(command: argparse.ArgumentParser) -> None:
    from .sampling import CompletionSettings

    command.add_argument("--model", default=None, help="model folder (default: the embedded demo model)")
    command.add_argument("--data", type=Path, default=None, help="pix2gestalt-format dataset folder")
    command.add_argument("--cocoa", type=Path, default=None, help="COCOA / BSDS-A style annotation json")
    command.add_argument("--images", type=Path, default=None, help="image root for --cocoa")
    command.add_argument("--limit", type=_positive_int, default=None, help="evaluate at most this many objects")
    command.add_argument(
        "--group-by", default=None, help="also report each value of this sample factor (e.g. held_out)"
    )
    command.add_argument("-o", "--output", type=Path, default=None, help="also write the JSON here")
    add_settings_arguments(command, CompletionSettings)
    _add_runtime_arguments(command, "base seed; object i uses seed + i")
    _add_compile_argument(command)


COMMANDS = {
    "batch": (_add_batch, "amodal completion over a dataset: resumable, COCO output"),
    "convert": (_add_convert, "convert an official pix2gestalt / Zero-1-to-3 checkpoint"),
    "complete": (_add_complete, "complete occluded objects in an image"),
    "views": (_add_views, "Zero-1-to-3 novel views of an object, as a views folder"),
    "image-to-3d": (_add_image_to_3d, "occluded image -> completed objects -> meshes (.glb), previews, metrics"),
    "reconstruct": (_add_reconstruct, "mesh from posed, masked views (a views folder)"),
    "evaluate": (_add_evaluate, "Chamfer, F-score, volume IoU, normal consistency as JSON"),
    "demo": (_add_demo, "the main job end to end on synthetic scenes (embedded model, CPU)"),
    "make-data": (_add_make_data, "synthetic occluded-object pairs in pix2gestalt's format"),
    "train": (_add_train, "train or fine-tune a pix2gestalt model (resumes automatically)"),
    "eval-amodal": (_add_eval_amodal, "amodal mIoU: single, vote, best-of-N and baselines"),
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the command named in ``argv`` gets its options (building them imports what it needs), so
    ``p2g3d --help`` and one command's options stay fast."""
    from . import __version__

    argv = sys.argv[1:] if argv is None else argv
    chosen = next((word for word in argv if word in COMMANDS), None)
    parser = argparse.ArgumentParser(prog="p2g3d", description="Amodal completion (pix2gestalt) for 3D pipelines.")
    parser.add_argument("--version", action="version", version=f"p2g3d {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (add_options, help_text) in COMMANDS.items():
        command = commands.add_parser(name, help=help_text, formatter_class=HelpFormatter)
        if name == chosen:
            add_options(command)
    return parser


# ---- commands -----------------------------------------------------------------------------------------------------


def run_convert(args: argparse.Namespace) -> int:
    from .convert import convert_checkpoint

    output = convert_checkpoint(
        args.checkpoint, args.output_dir, args.config, args.dtype, args.overwrite, unet_weights=args.unet_weights
    )
    logger.info("wrote %s", output)
    return 0


def run_complete(args: argparse.Namespace) -> int:
    from .completer import AmodalCompleter
    from .io import check_output_folder, load_image, load_mask, object_masks
    from .jobs.completion_files import write_completion
    from .sampling import CompletionSettings

    image = load_image(args.image)
    masks = [load_mask(path) for path in args.mask]
    object_masks(masks, *image.shape[:2])  # every mask is checked before the model loads
    check_output_folder(args.output, min_free_bytes=4 * image.nbytes * len(masks))
    settings = settings_from_arguments(CompletionSettings, args)
    completer = AmodalCompleter.from_pretrained(
        args.model, device=args.device, dtype=args.dtype, compile_mode=args.compile, **settings
    )
    results = completer(image, masks, seed=args.seed)
    summary = {"image": str(args.image), "model": str(args.model), "seed": args.seed, "settings": settings}
    write_completion(args.output, image, results, [str(path) for path in args.mask], summary)
    logger.info("wrote %d object(s) to %s", len(results), args.output)
    return 0


def run_batch(args: argparse.Namespace) -> int:
    from .jobs.batch import run_batch as batch
    from .sampling import CompletionSettings

    settings = settings_from_arguments(CompletionSettings, args)
    CompletionSettings(**settings)  # bad settings fail before anything runs

    def make_completer():
        from .completer import AmodalCompleter

        return AmodalCompleter.from_pretrained(
            args.model, device=args.device, dtype=args.dtype, compile_mode=args.compile, **settings
        )

    fingerprint = {"model": str(args.model or "embedded"), "dtype": args.dtype, "settings": settings}
    summary = batch(
        args.input,
        args.output,
        make_completer,
        fingerprint,
        images=args.images,
        seed=args.seed,
        engine=args.engine,
        pack=args.pack,
    )
    if summary:
        print(json.dumps(summary, indent=2))
    return 0


def run_image_to_3d(args: argparse.Namespace) -> int:
    from .integrations.registry import IMAGE_TO_3D, create_backend
    from .io import check_output_folder, load_image, load_mask, object_masks
    from .meshes import as_trimesh
    from .sampling import CompletionSettings

    image = load_image(args.image)
    masks = [load_mask(path) for path in args.mask]
    object_masks(masks, *image.shape[:2])  # inputs are checked before any model loads
    ground_truth = as_trimesh(args.ground_truth) if args.ground_truth is not None else None
    check_output_folder(args.output)
    settings = settings_from_arguments(CompletionSettings, args)
    CompletionSettings(**settings)
    options = {
        "model": args.backend_model,
        "device": args.device,
        "dtype": args.dtype,
        "num_views": args.num_views,
        "input_elevation": args.input_elevation,
        "num_inference_steps": args.backend_steps,
        "grid_size": args.grid_size,
    }
    backend = create_backend(
        args.backend, IMAGE_TO_3D, **{key: value for key, value in options.items() if value is not None}
    )
    completer = None
    if not args.no_complete:
        from .completer import AmodalCompleter

        completer = AmodalCompleter.from_pretrained(args.model, device=args.device, dtype=args.dtype, **settings)
    from .jobs.image_to_3d import occluded_image_to_meshes

    records = occluded_image_to_meshes(
        image,
        masks,
        backend,
        args.output,
        completer=completer,
        ground_truth=ground_truth,
        protocol=args.protocol,
        seed=args.seed,
    )
    for record in records:
        line = f"object {record['object']}: {args.output / record['mesh']}"
        if "metrics" in record:
            metrics = record["metrics"]
            iou = metrics["volume_iou"]
            iou_text = "n/a" if iou is None else f"{iou:.4f}"
            line += f"  chamfer {metrics['chamfer']:.4f}  volume IoU {iou_text} ({args.protocol})"
        print(line)
    return 0


def run_views(args: argparse.Namespace) -> int:
    from .integrations.base import save_views
    from .integrations.zero123 import NovelViewGenerator, NovelViewSettings, reframe_for_zero123
    from .io import check_output_folder, load_cutout, save_png

    source = load_cutout(args.image, args.mask)
    check_output_folder(args.output)
    settings = settings_from_arguments(NovelViewSettings, args)
    generator = NovelViewGenerator.from_pretrained(args.model, device=args.device, dtype=args.dtype, **settings)
    elevation = args.input_elevation if args.elevation is None else args.elevation
    cameras = generator.orbit(args.num_views, elevation_deg=elevation, radius=args.radius)
    views = generator(
        source,
        cameras,
        input_elevation=args.input_elevation,
        input_radius=args.radius,
        num_samples=args.samples,
        seed=args.seed,
    )
    save_png(args.output / "input.png", reframe_for_zero123(source, generator.size))
    header = {
        "input": {"file": "input.png", "camera": generator.input_camera(args.input_elevation, args.radius).to_dict()},
        "settings": {
            **settings,
            "seed": args.seed,
            "samples": args.samples,
            "input_elevation": args.input_elevation,
            "elevation": elevation,
            "radius": args.radius,
        },
    }
    save_views(
        [view.masked_view() for view in views],
        args.output,
        names=[view.stem for view in views],
        extra=[view.index_fields for view in views],
        header=header,
    )
    logger.info("wrote %d view(s) to %s", len(views), args.output)
    return 0


def run_reconstruct(args: argparse.Namespace) -> int:
    from .integrations.base import load_views
    from .integrations.registry import create_backend
    from .io import check_output_file
    from .meshes import FORMATS, export_mesh

    if args.output.suffix.lower().lstrip(".") not in FORMATS:
        raise ValueError(f"output must end in one of {', '.join('.' + f for f in FORMATS)}, got {args.output.name}")
    check_output_file(args.output)
    options = {"resolution": args.resolution, "iterations": args.iterations, "device": args.device}
    if args.bound is not None:
        if not args.bound > 0:
            raise ValueError(f"--bound must be positive, got {args.bound}")
        options["bounds"] = ((-args.bound,) * 3, (args.bound,) * 3)
    backend = create_backend(args.method, **{key: value for key, value in options.items() if value is not None})
    views = load_views(args.views_dir)
    export_mesh(backend.reconstruct(views), args.output)
    logger.info("wrote %s from %d views", args.output, len(views))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from .io import check_output_file, save_json
    from .metrics import evaluate

    if args.output is not None:
        check_output_file(args.output)
    result = evaluate(
        args.pred,
        args.gt,
        args.protocol,
        num_points=args.points,
        volume_resolution=args.volume_resolution,
        seed=args.seed,
    )
    if args.output is not None:
        save_json(args.output, result)
    print(json.dumps({k: v for k, v in result.items() if k != "alignment"}, indent=2))
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from .io import check_output_folder
    from .jobs.demo import run_demo as demo

    check_output_folder(args.output)
    table = demo(
        args.output,
        scenes=args.scenes,
        model=args.model,
        steps=args.steps,
        samples=args.samples,
        seed=args.seed,
        style=args.style,
        device=args.device,
    )
    print(table)
    print(f"\nmeshes (.glb), previews and metrics in {args.output}/")
    return 0


def run_make_data(args: argparse.Namespace) -> int:
    from .training.composite import write_synthetic_dataset

    write_synthetic_dataset(
        args.output,
        args.count,
        seed=args.seed,
        image_size=args.image_size,
        factors=args.factors,
        overwrite=args.overwrite,
    )
    logger.info("wrote %d samples to %s", args.count, args.output)
    return 0


def run_train(args: argparse.Namespace) -> int:
    from .training.trainer import TrainConfig, train

    model = train(TrainConfig(**settings_from_arguments(TrainConfig, args)))
    logger.info("model saved to %s", model)
    return 0


def run_eval_amodal(args: argparse.Namespace) -> int:
    from .completer import AmodalCompleter
    from .io import check_output_file, save_json
    from .sampling import CompletionSettings
    from .training.evaluation import evaluate_amodal, examples_from_cocoa, examples_from_folder

    if (args.data is None) == (args.cocoa is None):
        raise ValueError("give exactly one of --data (dataset folder) or --cocoa (annotation file, with --images)")
    if args.cocoa is not None and args.images is None:
        raise ValueError("--cocoa needs --images (the folder its file names are relative to)")
    if args.output is not None:
        check_output_file(args.output)
    examples = examples_from_folder(args.data) if args.data else examples_from_cocoa(args.cocoa, args.images)
    settings = settings_from_arguments(CompletionSettings, args)
    completer = AmodalCompleter.from_pretrained(
        args.model, device=args.device, dtype=args.dtype, compile_mode=args.compile, **settings
    )
    result = evaluate_amodal(completer, examples, seed=args.seed, limit=args.limit, group_by=args.group_by)
    if args.output is not None:
        save_json(args.output, result)
    print(json.dumps(result, indent=2))
    return 0


HANDLERS = {
    "batch": run_batch,
    "convert": run_convert,
    "complete": run_complete,
    "views": run_views,
    "reconstruct": run_reconstruct,
    "image-to-3d": run_image_to_3d,
    "evaluate": run_evaluate,
    "make-data": run_make_data,
    "demo": run_demo,
    "train": run_train,
    "eval-amodal": run_eval_amodal,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 a mistake of the user; bugs raise with their traceback)."""
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return HANDLERS[args.command](args)
    except USER_ERRORS as error:
        message = " ".join(str(error).split())
        print(f"p2g3d {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
