"""The ``p2g3d`` command: a table of commands, each a settings dataclass and a job function; nothing else.

Every command's options are generated from its settings dataclass (fields made with
:func:`p2g3d.settings.option`, nested settings such as :class:`~p2g3d.settings.CompletionSettings` included), so
the command line has the library's defaults and the library's value checks. The job function takes the settings
and returns its result (printed as JSON, or by the command's reporter).

Exit status: 0 done; 1 an internal error (a bug: one line that says so; ``-v`` shows the traceback); 2 a mistake in
the input or the environment (:class:`~p2g3d.errors.InputError`, a missing file, a missing optional package: one
line); 3 finished, but some items failed (``batch``: the count, and where the reasons are); 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import logging
import sys
import traceback
import types
import typing
from dataclasses import dataclass

logger = logging.getLogger("p2g3d")


@dataclass(frozen=True)
class Command:
    """A command: its settings dataclass and job function (``module:name``, imported only when the command is
    chosen), its help, whether a rerun resumes it, and optionally a function ``report(result, settings) -> str`` that
    turns the job's result into what the command prints (by default a dict result is printed as JSON), and one
    ``status(result, settings) -> (exit status, message or None)`` for jobs that can end with some of their work
    failed."""

    settings: str
    job: str
    help: str
    report: str | None = None
    status: str | None = None
    resumes: bool = False


COMMANDS = {
    "app": Command(
        "p2g3d.jobs.app:AppJob", "p2g3d.jobs.app:run_app", "the interactive app: click, complete, make 3D (Gradio)"
    ),
    "batch": Command(
        "p2g3d.jobs.batch.job:BatchJob",
        "p2g3d.jobs.batch.job:run_batch_job",
        "amodal completion over a dataset",
        status="p2g3d.jobs.batch.job:exit_status",
        resumes=True,
    ),
    "convert": Command(
        "p2g3d.jobs.convert:ConvertJob", "p2g3d.jobs.convert:run_convert", "convert an official checkpoint"
    ),
    "complete": Command(
        "p2g3d.jobs.complete:CompleteJob", "p2g3d.jobs.complete:run_complete", "complete occluded objects in an image"
    ),
    "views": Command("p2g3d.jobs.views:ViewsJob", "p2g3d.jobs.views:run_views", "Zero-1-to-3 novel views of an object"),
    "image-to-3d": Command(
        "p2g3d.jobs.image_to_3d:ImageTo3DJob",
        "p2g3d.jobs.image_to_3d:run_image_to_3d",
        "occluded image -> completed objects -> meshes (.glb), previews, metrics",
        report="p2g3d.jobs.image_to_3d:report",
    ),
    "reconstruct": Command(
        "p2g3d.jobs.reconstruct:ReconstructJob",
        "p2g3d.jobs.reconstruct:run_reconstruct",
        "mesh from posed, masked views (a views folder)",
    ),
    "evaluate": Command(
        "p2g3d.jobs.evaluate:EvaluateJob",
        "p2g3d.jobs.evaluate:run_evaluate",
        "Chamfer, F-score, volume IoU, normal consistency as JSON",
    ),
    "demo": Command(
        "p2g3d.jobs.demo:DemoJob",
        "p2g3d.jobs.demo:run_demo",
        "the main job end to end on synthetic scenes (embedded model, CPU)",
        report="p2g3d.jobs.demo:report",
    ),
    "make-data": Command(
        "p2g3d.jobs.make_data:MakeDataJob",
        "p2g3d.jobs.make_data:run_make_data",
        "synthetic occluded-object pairs in pix2gestalt's format",
    ),
    "train": Command(
        "p2g3d.training.config:TrainConfig",
        "p2g3d.training.trainer:train",
        "train or fine-tune a pix2gestalt / Zero-1-to-3 model (resumes automatically)",
        resumes=True,
    ),
    "distill": Command(
        "p2g3d.training.distill_config:DistillConfig",
        "p2g3d.training.distill:distill",
        "distil a pix2gestalt model into a few-step student without guidance (resumes automatically)",
        resumes=True,
    ),
    "eval-amodal": Command(
        "p2g3d.jobs.eval_amodal:EvalAmodalJob",
        "p2g3d.jobs.eval_amodal:run_eval_amodal",
        "amodal mIoU: single, vote, best-of-N and baselines",
    ),
}


def load_name(reference: str):
    """The object named by ``"module:name"``."""
    module, name = reference.split(":")
    return getattr(importlib.import_module(module), name)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default, except where there is none to show (required, None, off)."""

    def _get_help_string(self, action):
        if action.required or action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _parser_type(kind):
    """The parser's type for a field annotation: ``X | None`` -> X, ``list[X]`` -> X."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
    if typing.get_origin(kind) in (list, tuple):
        kind = typing.get_args(kind)[0]
    return kind


def add_settings_arguments(parser: argparse.ArgumentParser, settings_class) -> None:
    """One argument per field of ``settings_class`` that has a ``flag`` (type, default, help, choices from the
    field; the dataclass validates the value), and those of its nested settings."""
    hints = typing.get_type_hints(settings_class)
    for spec in dataclasses.fields(settings_class):
        if spec.metadata.get("nested"):
            add_settings_arguments(parser, hints[spec.name])
            continue
        flag = spec.metadata.get("flag")
        if flag is None:
            continue
        kind = _parser_type(spec.metadata.get("type", hints[spec.name]))
        options = {"help": spec.metadata.get("help", "")}
        if flag.startswith("-"):
            names = ["-o", flag] if flag == "--output" else [flag]
            names += list(spec.metadata.get("aliases", ()))
            options["dest"] = spec.name
        else:
            names = [spec.name]
        if kind is bool:
            parser.add_argument(*names, action="store_true", **options)
            continue
        if spec.metadata.get("action") == "append":
            options["action"] = "append"
        if "nargs" in spec.metadata:
            options["nargs"] = spec.metadata["nargs"]
        if spec.metadata.get("required"):
            options["required"] = True
        elif flag.startswith("-"):
            default = spec.default if spec.default is not dataclasses.MISSING else None
            options["default"] = None if options.get("action") == "append" else default
        if "choices" in spec.metadata:
            options["choices"] = spec.metadata["choices"]
        elif flag.startswith("-"):
            options["metavar"] = spec.metadata.get("metavar", flag.lstrip("-").upper().replace("-", "_"))
        parser.add_argument(*names, type=kind, **options)


def settings_from_arguments(settings_class, args: argparse.Namespace) -> dict:
    """The fields of ``settings_class`` read back from ``args`` (nested settings built), for ``settings_class(**)``;
    a repeatable option left out keeps the field's default."""
    values = {}
    for spec in dataclasses.fields(settings_class):
        if spec.metadata.get("nested"):
            nested_class = typing.get_type_hints(settings_class)[spec.name]
            values[spec.name] = nested_class(**settings_from_arguments(nested_class, args))
        elif spec.metadata.get("flag") is not None:
            value = getattr(args, spec.name)
            if value is not None or spec.metadata.get("action") != "append":
                values[spec.name] = value
    return values


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the command named in ``argv`` gets its options (building them imports its settings), so
    ``p2g3d --help`` and one command's options stay fast."""
    from . import __version__

    argv = sys.argv[1:] if argv is None else argv
    chosen = next((word for word in argv if word in COMMANDS), None)
    parser = argparse.ArgumentParser(prog="p2g3d", description="Amodal completion (pix2gestalt) for 3D pipelines.")
    parser.add_argument("--version", action="version", version=f"p2g3d {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details; tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        subparser = commands.add_parser(name, help=command.help, formatter_class=HelpFormatter)
        if name == chosen:
            add_settings_arguments(subparser, load_name(command.settings))
    return parser


def run_command(name: str, args: argparse.Namespace) -> int:
    """Build the command's settings from ``args``, run its job, print its result."""
    command = COMMANDS[name]
    settings_class = load_name(command.settings)
    settings = settings_class(**settings_from_arguments(settings_class, args))
    result = load_name(command.job)(settings)
    if command.report is not None:
        print(load_name(command.report)(result, settings))
    elif isinstance(result, dict):
        print(json.dumps(result, indent=2))
    if command.status is None:
        return 0
    code, message = load_name(command.status)(result, settings)
    if message:
        print(f"p2g3d {name}: {message}", file=sys.stderr)
    return code


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean bad input or environment (one line, exit 2)."""
    from .errors import InputError, MissingDependencyError

    errors: tuple[type[BaseException], ...] = (InputError, OSError, MissingDependencyError)
    if "safetensors" in sys.modules:  # a corrupt weights file
        from safetensors import SafetensorError

        errors += (SafetensorError,)
    return errors


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (module docstring)."""
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return run_command(args.command, args)
    except KeyboardInterrupt:
        hint = "; rerun the same command to resume" if COMMANDS[args.command].resumes else ""
        print(f"p2g3d {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    except Exception as error:  # every error ends in one line; -v adds the traceback
        if args.verbose:
            traceback.print_exception(error, file=sys.stderr)
        message = " ".join(str(error).split()) or error.__class__.__name__
        if isinstance(error, user_errors()):
            print(f"p2g3d {args.command}: error: {message}", file=sys.stderr)
            return 2
        print(
            f"p2g3d {args.command}: internal error ({error.__class__.__name__}: {message}); "
            "this is a bug: rerun with -v to see the traceback, and please report it",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
