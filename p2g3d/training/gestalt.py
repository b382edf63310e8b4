"""The pix2gestalt recipe: its dataset (pix2gestalt's folder format), what the frozen VAE and CLIP make of a batch
(encoded once and kept in the run folder), and the loss (module docstring of :mod:`p2g3d.training.trainer`)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..datasets import FOLDERS, GestaltDataset
from ..io import write_atomic
from ..pipelines.image_processing import preprocess_image, preprocess_mask
from ..pipelines.pix2gestalt import Pix2GestaltPipeline
from .config import TrainConfig
from .losses import dropout_masks

logger = logging.getLogger(__name__)


def load_batch(dataset: GestaltDataset, indices, image_size: int) -> dict[str, torch.Tensor]:
    """Samples -> model-space tensors: ``whole``, ``occluded`` ``(B, 3, S, S)`` in [-1, 1] and ``visible_mask``
    ``(B, 3, S, S)`` in {-1, 1}."""
    samples = [dataset[int(i)] for i in indices]
    return {
        "whole": preprocess_image(np.stack([s.whole for s in samples]), image_size, image_size),
        "occluded": preprocess_image(np.stack([s.occluded for s in samples]), image_size, image_size),
        "visible_mask": preprocess_mask(np.stack([s.visible_mask for s in samples]), image_size, image_size),
    }


@torch.no_grad()
def encode_batch(pipe: Pix2GestaltPipeline, batch: dict) -> dict[str, torch.Tensor]:
    """What the frozen VAE and CLIP make of a batch: the target posterior (``mean``, ``std``), the concat latents and
    the CLIP embedding. Deterministic, so it can be computed once per sample and cached."""
    device = pipe.vae.device
    whole, occluded, mask = (batch[k].to(device) for k in ("whole", "occluded", "visible_mask"))
    posterior = pipe.vae.encode(whole).latent_dist
    return {
        "mean": posterior.mean,
        "std": posterior.std,
        "concat": pipe.encode_concat_latents(occluded, mask),
        "clip": pipe.encode_clip_embedding(occluded),
    }


def encode_dataset(pipe: Pix2GestaltPipeline, dataset: GestaltDataset, image_size: int, chunk: int = 32) -> dict:
    """:func:`encode_batch` of every sample, stacked (for datasets that fit in memory)."""
    parts = []
    for start in tqdm(range(0, len(dataset), chunk), desc="encoding dataset", unit="chunk", leave=False):
        indices = range(start, min(start + chunk, len(dataset)))
        parts.append({k: v.cpu() for k, v in encode_batch(pipe, load_batch(dataset, indices, image_size)).items()})
    return {key: torch.cat([part[key] for part in parts]).contiguous() for key in parts[0]}  # as read back from a file


ENCODED_DATASET = "encoded_dataset.safetensors"


def encoding_fingerprint(pipe: Pix2GestaltPipeline, dataset: GestaltDataset, image_size: int) -> str:
    """What :func:`encode_dataset` depends on, hashed: the sample files (names, sizes, modification times), the
    dataset's ``dataset.json``, the resolution and the frozen VAE and CLIP weights."""
    digest = hashlib.sha256(f"{image_size}\n".encode())
    for name in dataset.names:
        for sub in FOLDERS:
            stat = (dataset.folder / sub / name).stat()
            digest.update(f"{sub}/{name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    description = dataset.folder / "dataset.json"
    if description.is_file():
        digest.update(description.read_bytes())
    for module in (pipe.vae, pipe.image_encoder):
        for key, tensor in sorted(module.state_dict().items()):
            digest.update(key.encode())
            digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def load_or_encode_dataset(pipe: Pix2GestaltPipeline, dataset: GestaltDataset, image_size: int, cache: Path) -> dict:
    """:func:`encode_dataset`, kept in the file ``cache`` (safetensors, written atomically) so that a resumed run
    does not encode again; reused only when :func:`encoding_fingerprint` matches the one it was made with."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save

    fingerprint = encoding_fingerprint(pipe, dataset, image_size)
    if cache.is_file():
        with safe_open(str(cache), "pt") as file:
            if (file.metadata() or {}).get("fingerprint") == fingerprint:
                logger.info("encoded dataset read from %s", cache)
                return load_file(str(cache))
        logger.info("%s was made from other samples or weights: encoding again", cache)
    encoded = encode_dataset(pipe, dataset, image_size)
    write_atomic(cache, save(encoded, metadata={"fingerprint": fingerprint}))
    return encoded


def diffusion_loss(
    pipe: Pix2GestaltPipeline, encoded: dict, rate: float, generator: torch.Generator, target_latent: str = "sample"
) -> torch.Tensor:
    """eps MSE of one encoded batch (:func:`encode_batch`) with CFG dropout.

    ``target_latent="sample"`` draws the target latent from the VAE posterior (official); ``"mode"`` takes its mean,
    for small autoencoders whose posterior is still wide.
    """
    device = pipe.unet.device
    mean, std, concat, clip = (encoded[k].to(device) for k in ("mean", "std", "concat", "clip"))
    draw = torch.randn(mean.shape, generator=generator).to(device)  # drawn either way: same random stream
    latents = pipe.normalize_latents(mean + std * draw if target_latent == "sample" else mean)
    drop_clip, drop_concat = (m.to(device) for m in dropout_masks(len(mean), rate, generator))
    context = pipe.cc_projection(torch.where(drop_clip[:, None, None], torch.zeros_like(clip), clip))
    concat = concat * (~drop_concat).float()[:, None, None, None]
    timesteps = torch.randint(0, pipe.scheduler.config.num_train_timesteps, (len(mean),), generator=generator).to(
        device
    )
    noise = torch.randn(latents.shape, generator=generator).to(device)
    noisy = pipe.scheduler.add_noise(latents, noise, timesteps)
    prediction = pipe.unet(torch.cat([noisy, concat], dim=1), timesteps, encoder_hidden_states=context).sample
    return F.mse_loss(prediction.float(), noise.float())


class Pix2GestaltRecipe:
    """What the trainer needs to know of pix2gestalt: its pipeline, dataset, encoding and loss."""

    name = "pix2gestalt"
    pipeline_class = Pix2GestaltPipeline
    in_channels = 12  # noisy latents, scene latents, mask latents
    extra_features = 0  # the CLIP embedding alone goes through cc_projection

    def open_dataset(self, folder) -> GestaltDataset:
        return GestaltDataset(folder)

    def encode(self, pipe, dataset: GestaltDataset, config: TrainConfig) -> dict | None:
        """The dataset through the frozen VAE and CLIP for the diffusion stage, up to ``cache_limit`` samples or
        when the latent scale is calibrated, kept in ``OUTPUT_DIR/encoded_dataset.safetensors`` for resumed runs;
        None when batches are encoded step by step."""
        if len(dataset) <= config.cache_limit or config.calibrate_latent_scale:
            return load_or_encode_dataset(pipe, dataset, config.image_size, Path(config.output_dir) / ENCODED_DATASET)
        return None

    def latent_means(self, encoded: dict) -> torch.Tensor:
        return encoded["mean"]

    def autoencoder_batch(self, dataset: GestaltDataset, config: TrainConfig, rng: np.random.Generator) -> dict:
        indices = rng.choice(len(dataset), config.batch_size, replace=len(dataset) < config.batch_size)
        return load_batch(dataset, indices, config.image_size)

    def diffusion_loss(self, pipe, dataset, encoded, config: TrainConfig, rng, generator) -> torch.Tensor:
        indices = rng.choice(len(dataset), config.batch_size, replace=len(dataset) < config.batch_size)
        if encoded is not None:
            batch = {key: value[torch.as_tensor(indices)] for key, value in encoded.items()}
        else:
            batch = encode_batch(pipe, load_batch(dataset, indices, config.image_size))
        return diffusion_loss(pipe, batch, config.dropout, generator, config.target_latent)
