"""Loading converted model folders (local paths or hub ids) with clear errors for broken folders."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import torch

from .pipelines.pix2gestalt import Pix2GestaltPipeline

DEFAULT_MODEL_NOTE = (
    "using the embedded demonstration model: a small pix2gestalt-style model trained from scratch on the "
    "project's synthetic objects; real images need the official weights (see `p2g3d convert`)"
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
logger = logging.getLogger(__name__)


class ModelFolderError(ValueError):
    """A model folder is missing, incomplete or half-written."""


def validate_model_folder(path: str | os.PathLike) -> Path:
    """Check that ``path`` is a complete diffusers folder: model_index.json, each component's config and readable
    weights (safetensors headers are checked, which catches truncated files)."""
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
        raise ModelFolderError(f"{index_path} is not valid JSON ({error.msg}): the folder looks half-written") from error
    components = {name: spec for name, spec in index.items() if not name.startswith("_")}
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
    """Folder of the embedded demonstration model shipped inside the package."""
    from importlib import resources

    return Path(str(resources.files("p2g3d") / "default_model"))


def load_pipeline(
    path_or_hub_id: str | os.PathLike | None, device: torch.device, dtype: torch.dtype
) -> Pix2GestaltPipeline:
    """Load a converted pix2gestalt folder (validated first), a hub id, or with ``None`` the embedded
    demonstration model, on ``device`` in ``dtype``."""
    if path_or_hub_id is None:
        logger.info(DEFAULT_MODEL_NOTE)
        path_or_hub_id = default_model_path()
    text = str(path_or_hub_id)
    if Path(text).exists() or not _HUB_ID.match(text):
        validate_model_folder(text)
    pipeline = Pix2GestaltPipeline.from_pretrained(text, dtype=dtype)
    pipeline.set_progress_bar_config(leave=False)
    return pipeline.to(device)
