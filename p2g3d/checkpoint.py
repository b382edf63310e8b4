"""Safe loading of official Lightning training checkpoints (``.ckpt``).

Official pix2gestalt / Zero-1-to-3 checkpoints are full PyTorch-Lightning 1.4 training checkpoints: besides the
weights they pickle a ``pytorch_lightning`` callback class and numpy scalars. Plain unpickling would execute
whatever globals the file names. Here the file is read with PyTorch's restricted ``weights_only`` unpickler,
extended by an explicit allowlist: an inert stand-in for the Lightning callback class (only ever used as a dict
key) and the numpy scalar / dtype globals. Anything else is refused with :class:`UnsafeCheckpointError` before it
can run. ``pytorch_lightning`` does not need to be installed.

Zip-format checkpoints (every ``torch.save`` since PyTorch 1.6) are memory-mapped: tensors are read lazily from
the page cache, so converting the 15.5 GB official file touches only the ~5 GB of inference weights.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from .errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["UnsafeCheckpointError", "load_lightning_state_dict"]


class UnsafeCheckpointError(InputError):
    """The checkpoint names a pickle global outside the allowlist (it could run code), or is not a checkpoint."""


class _LightningCallbackKey:
    """Inert stand-in for ``pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint``.

    Lightning <= 1.4 keys its ``callbacks`` dict by the callback class itself, so the pickle only references the
    class (a GLOBAL) and never instantiates it.
    """


def _allowed_globals() -> list:
    """Globals the official checkpoints need beyond torch's weights_only defaults, under their pickled names."""
    numpy_core = getattr(np, "_core", None) or np.core  # numpy 2 moved numpy.core to numpy._core
    allowed: list = [
        (_LightningCallbackKey, "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"),
        (numpy_core.multiarray.scalar, "numpy.core.multiarray.scalar"),
        (numpy_core.multiarray.scalar, "numpy._core.multiarray.scalar"),
        np.dtype,
    ]
    for name in ("Float64DType", "Float32DType", "Int64DType", "Int32DType"):
        dtype_class = getattr(np.dtypes, name, None)
        if dtype_class is not None:
            allowed.append(dtype_class)
    return allowed


def load_lightning_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read ``state_dict`` of an official Lightning checkpoint without executing code from it.

    Args:
        path: ``.ckpt`` file (zip or legacy format). A bare state dict (no ``state_dict`` key) is accepted too.

    Returns:
        Mapping of parameter name to tensor. Zip-format files are memory-mapped: tensors stay on disk until used.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafeCheckpointError: the pickle names a global outside the allowlist, or holds no tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    mmap = zipfile.is_zipfile(path)
    if not mmap:
        logger.info("%s is a legacy (non-zip) checkpoint: it is read into RAM instead of memory-mapped", path)
    try:
        with torch.serialization.safe_globals(_allowed_globals()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        forbidden = re.search(r"GLOBAL ([\w.]+)", str(error))
        if forbidden is None:  # not a forbidden global: the file is no checkpoint pickle at all
            raise UnsafeCheckpointError(
                f"{path} is not a readable PyTorch checkpoint (its pickle stream is malformed or of another kind)"
            ) from error
        raise UnsafeCheckpointError(
            f"refused to load {path} as unsafe: it references {forbidden.group(1)}, which is not one of the globals "
            "an official checkpoint needs; nothing from it was executed, and p2g3d never loads checkpoints unsafely"
        ) from error
    except (RuntimeError, EOFError) as error:
        raise UnsafeCheckpointError(f"{path} is not a readable PyTorch checkpoint: {error}") from error

    state_dict = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state_dict, Mapping) or not any(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise UnsafeCheckpointError(f"{path} holds no state_dict of tensors (got {type(checkpoint).__name__})")
    return dict(state_dict)
