"""The Zero-1-to-3 recipe: its dataset (Zero-1-to-3's render layout), view encoding, pairs and the loss.

Recipe (Zero-1-to-3's official ``ddpm.py``): a pair of views (condition, target) of one object; eps-prediction
MSE on the target latent ``VAE(target).sample() * s``; context ``cc_projection([CLIP(condition), T])`` with the
relative pose ``T = [rad(delta polar), sin(delta azimuth), cos(delta azimuth), delta radius]``; concat latents the
posterior mean (unscaled) of the condition view. CFG dropout per sample with ``p = 0.05``: ``r < 2p`` zeroes the CLIP
embedding BEFORE the projection (the pose stays), ``p <= r < 3p`` zeroes the concat latents (so both in
``[p, 2p)``). ``cc_projection`` starts as the identity on the CLIP part and zero on the pose, as the official model
(:func:`~p2g3d.training.models.identity_projection`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..cameras import zero123_relative_poses
from ..pipelines.image_processing import preprocess_image
from ..pipelines.zero123 import POSE_FEATURES, Zero123Pipeline, relative_pose_embedding
from .config import TrainConfig
from .losses import dropout_masks
from .multiview import MultiViewDataset


class EncodedViews:
    """Every view of a :class:`MultiViewDataset` through the frozen VAE and CLIP, and pair drawing.

    Attributes:
        mean, std: ``(N, 4, h, w)`` posterior of every view (all objects' views concatenated);
        clip: ``(N, 1, E)`` CLIP image embeddings;
        centers: ``(N, 3)`` camera centres; ``starts``, ``counts``: ``(O,)`` each object's first view and view count.
    """

    def __init__(self, pipe: Zero123Pipeline, dataset: MultiViewDataset, image_size: int, chunk: int = 64):
        parts, centers, counts = [], [], []
        images: list[np.ndarray] = []

        def flush():
            batch = preprocess_image(np.stack(images), image_size, image_size).to(pipe.vae.device)
            with torch.no_grad():
                posterior = pipe.vae.encode(batch.to(pipe.vae.dtype)).latent_dist
                parts.append(
                    {
                        "mean": posterior.mean.cpu(),
                        "std": posterior.std.cpu(),
                        "clip": pipe.encode_clip_embedding(batch).cpu(),
                    }
                )
            images.clear()

        for index in tqdm(range(len(dataset)), desc="encoding views", unit="object", leave=False):
            views = dataset[index]
            images.extend(views.images)
            centers.append(views.centers)
            counts.append(len(views.images))
            if len(images) >= chunk:
                flush()
        if images:
            flush()
        self.mean, self.std, self.clip = (torch.cat([part[key] for part in parts]) for key in ("mean", "std", "clip"))
        self.centers = np.concatenate(centers)
        self.counts = np.asarray(counts)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])

    def draw_pairs(self, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
        """``count`` (condition, target) view indices: a random object, then two different random views of it."""
        objects = rng.integers(len(self.counts), size=count)
        first = rng.integers(self.counts[objects])
        second = (first + 1 + rng.integers(self.counts[objects] - 1)) % self.counts[objects]
        return self.starts[objects] + first, self.starts[objects] + second


def novel_view_loss(
    pipe: Zero123Pipeline,
    views: EncodedViews,
    rng: np.random.Generator,
    generator: torch.Generator,
    batch_size: int,
    rate: float,
    target_latent: str = "sample",
) -> torch.Tensor:
    """eps MSE of ``batch_size`` random pairs with the official CFG dropout (module docstring)."""
    device = pipe.unet.device
    condition, target = views.draw_pairs(rng, batch_size)
    poses = zero123_relative_poses(views.centers[condition], views.centers[target])
    pose = relative_pose_embedding(*poses.T).to(device)
    mean, std = views.mean[target].to(device), views.std[target].to(device)
    draw = torch.randn(mean.shape, generator=generator).to(device)
    latents = pipe.normalize_latents(mean + std * draw if target_latent == "sample" else mean)
    drop_clip, drop_concat = (m.to(device) for m in dropout_masks(batch_size, rate, generator))
    clip = views.clip[condition].to(device)
    clip = torch.where(drop_clip[:, None, None], torch.zeros_like(clip), clip)
    context = pipe.cc_projection(torch.cat([clip, pose.to(clip)], dim=-1))
    concat = views.mean[condition].to(device) * (~drop_concat).float()[:, None, None, None]
    timesteps = torch.randint(0, pipe.scheduler.config.num_train_timesteps, (batch_size,), generator=generator).to(
        device
    )
    noise = torch.randn(latents.shape, generator=generator).to(device)
    noisy = pipe.scheduler.add_noise(latents, noise, timesteps)
    prediction = pipe.unet(torch.cat([noisy, concat], dim=1), timesteps, encoder_hidden_states=context).sample
    return F.mse_loss(prediction.float(), noise.float())


def view_batch(dataset: MultiViewDataset, rng: np.random.Generator, batch_size: int, image_size: int) -> dict:
    """Random views as ``{"views": (B, 3, S, S)}`` in [-1, 1], for the autoencoder stage."""
    objects = rng.integers(len(dataset), size=batch_size)
    images = []
    for index in objects:
        views = dataset[int(index)].images
        images.append(views[rng.integers(len(views))])
    return {"views": preprocess_image(np.stack(images), image_size, image_size)}


class Zero123Recipe:
    """What the trainer needs to know of Zero-1-to-3: its pipeline, dataset, encoding and loss."""

    name = "zero123"
    pipeline_class = Zero123Pipeline
    in_channels = 8  # noisy latents, condition-view latents
    extra_features = POSE_FEATURES  # the relative pose goes through cc_projection with the CLIP embedding

    def open_dataset(self, folder) -> MultiViewDataset:
        return MultiViewDataset(folder)

    def encode(self, pipe, dataset: MultiViewDataset, config: TrainConfig) -> EncodedViews:
        """Every view through the frozen VAE and CLIP (each view serves as condition and as target)."""
        return EncodedViews(pipe, dataset, config.image_size)

    def latent_means(self, encoded: EncodedViews) -> torch.Tensor:
        return encoded.mean

    def autoencoder_batch(self, dataset: MultiViewDataset, config: TrainConfig, rng: np.random.Generator) -> dict:
        return view_batch(dataset, rng, config.batch_size, config.image_size)

    def diffusion_loss(self, pipe, dataset, encoded, config: TrainConfig, rng, generator) -> torch.Tensor:
        return novel_view_loss(pipe, encoded, rng, generator, config.batch_size, config.dropout, config.target_latent)
