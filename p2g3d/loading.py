"""Loading converted model folders (local paths or hub ids) with clear errors for broken folders."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .errors import InputError

if TYPE_CHECKING:
    import torch

PipelineT = TypeVar("PipelineT")

DEFAULT_MODEL_NOTE = (
    "using the embedded demonstration model: a small pix2gestalt-style model trained from scratch on the "
    "project's synthetic objects; real images need the official weights (see `p2g3d convert`)"
)
# model_index.json class names each pipeline loads (the community Zero-1-to-3 layout has its own).
COMPATIBLE_CLASSES = {
    "Pix2GestaltPipeline": ("Pix2GestaltPipeline",),
    "Zero123Pipeline": ("Zero123Pipeline", "Zero1to3StableDiffusionPipeline"),
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
logger = logging.getLogger(__name__)


class ModelFolderError(InputError):
    """A model folder is missing, incomplete or half-written."""


def validate_model_folder(path: str | os.PathLike, pipeline_class_name: str | None = None) -> Path:
    """Check that ``path`` is a complete diffusers folder: model_index.json (naming ``pipeline_class_name`` when
    given), each component's config and readable weights (safetensors headers are checked, which catches
    truncated files)."""
    from safetensors import safe_open

    folder = Path(path)
    if not folder.is_dir():
        raise ModelFolderError(f"model folder not found: {folder}")
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise ModelFolderError(f"{folder} has no model_index.json: not a converted model folder (see `p2g3d convert`)")
    try:
        index = json.loads(index_path.read_text())
    except json.JSONDecodeError as error:
        raise ModelFolderError(
            f"{index_path} is not valid JSON ({error.msg}): the folder looks half-written"
        ) from error
    found_class = index.get("_class_name")
    if pipeline_class_name is not None and found_class not in COMPATIBLE_CLASSES.get(pipeline_class_name, ()):
        raise ModelFolderError(
            f"{folder} holds a {found_class} model, but a {pipeline_class_name} model is needed here"
        )
    components = {  # component entries are [library, class]; other entries are settings (sampling_defaults)
        name: spec for name, spec in index.items() if not name.startswith("_") and isinstance(spec, list)
    }
    for name, spec in components.items():
        sub = folder / name
        if not sub.is_dir():
            raise ModelFolderError(f"{folder} lacks the component folder {name}/ named in model_index.json")
        if spec[1].endswith("Scheduler"):
            if not (sub / "scheduler_config.json").is_file():
                raise ModelFolderError(f"{sub} lacks scheduler_config.json")
            continue
        if not (sub / "config.json").is_file():
            raise ModelFolderError(f"{sub} lacks config.json")
        weights = [p for p in sub.iterdir() if p.name.endswith(_WEIGHT_SUFFIXES) and not p.name.startswith(".")]
        if not weights:
            raise ModelFolderError(f"{sub} has no weights file (*.safetensors): the folder looks half-written")
        for weight in weights:
            if weight.suffix == ".safetensors":
                try:
                    with safe_open(weight, framework="pt"):
                        pass
                except Exception as error:  # safetensors raises its own error type for broken files
                    raise ModelFolderError(f"{weight} is unreadable or truncated: {error}") from error
    return folder


def default_model_path() -> Path:
    """Folder of the embedded demonstration pix2gestalt model shipped inside the package."""
    from importlib import resources

    return Path(str(resources.files("p2g3d") / "default_model"))


def default_fast_model_path() -> Path:
    """Folder of the embedded few-step student of the demonstration model (latent consistency distillation)."""
    from importlib import resources

    return Path(str(resources.files("p2g3d") / "default_fast_model"))


EMBEDDED_MODELS = {"embedded": default_model_path, "embedded-fast": default_fast_model_path}


def resolve_model_name(path_or_hub_id: str | os.PathLike | None) -> str | os.PathLike:
    """The folder of a pix2gestalt model name: ``None`` or ``"embedded"`` -> the embedded demonstration model,
    ``"embedded-fast"`` -> its few-step student (reserved names: they win over a local folder so named); anything
    else is returned unchanged (a folder or a hub id)."""
    if path_or_hub_id is None:
        return default_model_path()
    finder = EMBEDDED_MODELS.get(str(path_or_hub_id))
    return finder() if finder is not None else path_or_hub_id


def default_zero123_path() -> Path:
    """Folder of the embedded demonstration Zero-1-to-3 model shipped inside the package."""
    from importlib import resources

    return Path(str(resources.files("p2g3d") / "default_zero123"))


def load_pipeline(
    pipeline_class: type[PipelineT], path_or_hub_id: str | os.PathLike, device: torch.device, dtype: torch.dtype
) -> PipelineT:
    """Load a converted folder (validated first, and checked to hold a ``pipeline_class`` model) or a hub id, on
    ``device`` in ``dtype``, with the progress bar of each call cleared when it ends."""
    text = str(path_or_hub_id)
    if Path(text).exists() or not _HUB_ID.match(text):
        validate_model_folder(text, pipeline_class.__name__)
    try:
        with quiet_loading():
            pipeline = pipeline_class.from_pretrained(text, dtype=dtype)
    except OSError as error:  # huggingface_hub's offline, missing-repository and HTTP errors are OSErrors
        raise ModelFolderError(
            f"{text!r} is neither a local model folder nor a hub repository that could be loaded "
            f"({error.__class__.__name__}: {str(error).splitlines()[0] if str(error) else ''})"
        ) from error
    pipeline.set_progress_bar_config(leave=False)
    with quiet_loading():  # diffusers warns that fp16 cannot run on the CPU; current PyTorch runs it
        return pipeline.to(device)


@contextlib.contextmanager
def quiet_loading():
    """Silence diffusers' and transformers' loading progress bars and informational warnings for a while."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    verbosity = diffusers_logging.get_verbosity()
    bars = diffusers_logging.is_progress_bar_enabled(), transformers_logging.is_progress_bar_enabled()
    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        diffusers_logging.set_verbosity(verbosity)
        if bars[0]:
            diffusers_logging.enable_progress_bar()
        if bars[1]:
            transformers_logging.enable_progress_bar()
