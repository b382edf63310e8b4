"""Opt-in compiled UNet: ``torch.compile`` (and CUDA graphs with ``mode="reduce-overhead"``), checked against eager.

The eager path stays the faithful one. :func:`compile_unet` swaps the pipeline's UNet for its compiled module and
runs one guided-size UNet call both ways on seeded random inputs; if the outputs differ by more than the tolerance
the eager UNet is put back and ValueError says by how much. Compilation happens on that first call (minutes on a
CPU, tens of seconds on a GPU), and again for each new batch size until torch marks the batch dimension dynamic.
"""

from __future__ import annotations

import logging

import torch

from .errors import InputError
from .settings import COMPILE_MODES

logger = logging.getLogger(__name__)

"""``torch.compile`` modes; ``"reduce-overhead"`` adds CUDA graphs on CUDA devices."""
TOLERANCES = {torch.float32: 1e-3, torch.float16: 2e-2, torch.bfloat16: 5e-2}
"""Largest accepted |compiled - eager| of the predicted noise (unit variance), per weights dtype."""


def compile_unet(
    pipeline, mode: str = "default", *, backend: str = "inductor", tolerance: float | None = None
) -> float:
    """Compile ``pipeline.unet`` in place and check it against the eager UNet; returns the measured max deviation.

    Args:
        pipeline: a loaded pix2gestalt or Zero-1-to-3 pipeline.
        mode: one of :data:`COMPILE_MODES`.
        backend: the ``torch.compile`` backend (``"inductor"``; ``"aot_eager"`` traces without generating code).
        tolerance: accepted max |compiled - eager| of the noise prediction; default :data:`TOLERANCES` by dtype.

    Raises:
        ValueError: unknown mode, or compiled outputs farther than ``tolerance`` from eager (the eager UNet is kept).
    """
    if mode not in COMPILE_MODES:
        raise InputError(f"compile mode must be one of {COMPILE_MODES}, got {mode!r}")
    eager = pipeline.unet
    tolerance = TOLERANCES.get(eager.dtype, 5e-2) if tolerance is None else tolerance
    inputs = _probe_inputs(eager)
    compiled = torch.compile(eager, mode=mode, backend=backend)
    with torch.no_grad():
        expected = eager(*inputs[:2], encoder_hidden_states=inputs[2]).sample.float()
        actual = compiled(*inputs[:2], encoder_hidden_states=inputs[2]).sample.float()
    deviation = float((actual - expected).abs().max())
    if not deviation <= tolerance:
        raise InputError(
            f"the compiled UNet ({mode}, {backend}) deviates from eager by {deviation:.3g} > {tolerance:g}"
        )
    pipeline.unet = compiled
    logger.info("UNet compiled (%s, %s); max deviation from eager %.3g", mode, backend, deviation)
    return deviation


def _probe_inputs(unet) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A seeded guided-batch input ``(latents (2, C, h, w), timestep, context (2, 1, D))`` on the UNet's device."""
    config = unet.config
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(2, config.in_channels, config.sample_size, config.sample_size, generator=generator)
    context = torch.randn(2, 1, config.cross_attention_dim, generator=generator)
    return (
        latents.to(unet.device, unet.dtype),
        torch.tensor(500, device=unet.device),
        context.to(unet.device, unet.dtype),
    )
