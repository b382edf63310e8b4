"""Device and dtype selection with clear errors. Imports torch only when a device or dtype is resolved."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:
    import torch

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
"""The one dtype table: the names every command line and API accepts (also under torch's own names)."""


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` -> CUDA when available, else CPU. Unknown or unavailable devices raise ValueError."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise InputError(f"unknown device {device!r}; expected e.g. 'cpu', 'cuda' or 'cuda:1'") from error
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {device!r} was requested but CUDA is not available on this machine")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise InputError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s) found")
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {device!r} was requested but MPS is not available on this machine")
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"unsupported device {device!r}; expected 'cpu', 'cuda[:N]' or 'mps'")
    return resolved


def torch_dtype(name: str | torch.dtype) -> torch.dtype:
    """``"fp32"`` / ``"fp16"`` / ``"bf16"`` (or torch's names, or a torch dtype among them) -> the torch dtype."""
    import torch

    allowed = {getattr(torch, torch_name) for torch_name in DTYPES.values()}
    if isinstance(name, torch.dtype):
        if name not in allowed:
            raise InputError(f"unsupported dtype {name}; expected float32, float16 or bfloat16")
        return name
    torch_name = DTYPES.get(name, name if name in DTYPES.values() else None)
    if torch_name is None:
        raise InputError(f"unknown dtype {name!r}; expected one of {', '.join(DTYPES)}")
    return getattr(torch, torch_name)


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None`` -> float16 on CUDA, float32 elsewhere; otherwise :func:`torch_dtype`."""
    if dtype is None:
        return torch_dtype("fp16" if device.type == "cuda" else "fp32")
    return torch_dtype(dtype)
