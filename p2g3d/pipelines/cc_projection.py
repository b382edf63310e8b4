"""The conditioning projection shared by pix2gestalt and Zero-1-to-3."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class CCProjection(ModelMixin, ConfigMixin):
    """``Linear(in_features, out_features)`` from the CLIP image embedding (plus pose for Zero-1-to-3) to the
    UNet's cross-attention context.

    pix2gestalt: 768 -> 768 on the CLIP embedding. Zero-1-to-3: 772 -> 768 on ``[CLIP, pose]``.
    """

    @register_to_config
    def __init__(self, in_features: int = 768, out_features: int = 768):
        super().__init__()
        self.projection = nn.Linear(in_features, out_features)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """``(B, T, in_features)`` -> ``(B, T, out_features)``."""
        return self.projection(embedding)
