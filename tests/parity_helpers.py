"""Helpers shared by the reference-parity tests."""

from __future__ import annotations

import torch


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference of two same-shaped tensors."""
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item()


class StepRecorder:
    """``callback_on_step_end`` that keeps each step's latents, predicted x0 and timestep."""

    tensor_inputs = ["latents", "pred_original_sample"]

    def __init__(self):
        self.latents, self.pred_x0, self.timesteps = [], [], []

    def __call__(self, pipeline, step_index, timestep, tensors):
        self.latents.append(tensors["latents"].clone())
        self.pred_x0.append(tensors["pred_original_sample"].clone())
        self.timesteps.append(int(timestep))
        return tensors
