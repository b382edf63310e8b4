"""Training losses and dropout shared by the model families' recipes."""

from __future__ import annotations

import torch


def dropout_masks(count: int, rate: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample ``(drop_clip, drop_concat)`` bools: CLIP only below ``rate``, both in ``[rate, 2 rate)``, concat
    only in ``[2 rate, 3 rate)`` (the official ``prompt_mask`` / ``input_mask``)."""
    r = torch.rand(count, generator=generator)
    return r < 2 * rate, (r >= rate) & (r < 3 * rate)


def autoencoder_loss(pipe, batch: dict, kl_weight: float, generator: torch.Generator) -> torch.Tensor:
    """Latent Diffusion's autoencoder objective without its perceptual and adversarial terms, on every image of the
    batch (pix2gestalt: the whole and occluded images and the mask image): per image, the L1 reconstruction error
    summed over pixels plus ``kl_weight`` x the KL summed over the latent (LDM: 1e-6), averaged over the batch and
    divided by the pixel count.
    The division is a constant factor, so the balance of the two terms is LDM's."""
    device = pipe.vae.device
    images = torch.cat(list(batch.values())).to(device)
    posterior = pipe.vae.encode(images).latent_dist
    latents = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator).to(device)
    reconstruction = pipe.vae.decode(latents).sample
    reconstruction_error = (reconstruction - images).abs().sum(dim=(1, 2, 3))
    return (reconstruction_error + kl_weight * posterior.kl()).mean() / images[0].numel()
