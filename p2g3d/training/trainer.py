"""Training and fine-tuning ``Pix2GestaltPipeline`` with the paper's recipe (and ``Zero123Pipeline`` with its own,
:mod:`.novel_view`, on multi-view data, :mod:`.multiview`), through ``accelerate``.

Recipe (paper section 4 and the official training code):

* eps-prediction MSE; target latent = ``VAE(whole).sample() * scaling_factor``; concat latents = posterior means
  (unscaled) of the occluded scene and the visible mask, as at inference;
* per-sample classifier-free-guidance dropout with ``p = 0.05``: ``r < p`` drops the CLIP embedding only,
  ``p <= r < 2p`` drops both, ``2p <= r < 3p`` drops the concat latents only. As in the official training code the
  CLIP embedding is zeroed BEFORE ``cc_projection`` (inference zeroes the context after it);
* AdamW, ``cc_projection`` at 10x the UNet's learning rate, linear warm-up from 1e-6 over 100 steps, then constant;
* EMA of the UNet weights (decay 0.9999 with the ``(1 + n) / (10 + n)`` warm-up of the official ``LitEma``); the
  saved model holds the EMA weights, as the official checkpoint's inference path uses;
* VAE and CLIP frozen.

For a small autoencoder trained from scratch, ``calibrate_latent_scale`` centres the target latents on the latent of
the empty white canvas and scales them to unit standard deviation (:func:`calibrate_latents`; stored as the VAE
config's ``latents_mean`` / ``latents_std`` / ``scaling_factor``), and ``target_latent="mode"`` trains on posterior
means instead of samples.

Every step draws its batch, noise, timesteps and dropout from generators seeded by ``(seed, step)``, so a run
resumed from a checkpoint continues exactly as an uninterrupted one. Mixed precision and several GPUs come from
``accelerate`` (``accelerate launch -m p2g3d.cli train ...``).

``init="scratch"`` builds a small model from configs (:func:`scratch_components`). ``stage="vae"`` trains the
autoencoder of a model built from scratch (L1 reconstruction + 1e-6 KL, as LDM) before
the diffusion stage, since a small from-scratch model has no pretrained VAE.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..io import save_json, write_atomic
from ..pipelines.cc_projection import CCProjection
from ..pipelines.image_processing import preprocess_image, preprocess_mask
from ..pipelines.official_ddim import official_ddim_scheduler
from ..pipelines.pix2gestalt import Pix2GestaltPipeline
from ..pipelines.zero123 import POSE_FEATURES, Zero123Pipeline
from .config import TrainConfig
from .data import FOLDERS, GestaltDataset

logger = logging.getLogger(__name__)

WARMUP_START = 1e-6


def scratch_components(image_size: int = 64, seed: int = 0, in_channels: int = 12) -> dict:
    """The parts of a small model built from configs (random weights): VAE with 4x downsampling, a small UNet with
    ``in_channels`` inputs (12 for pix2gestalt, 8 for Zero-1-to-3), a tiny frozen CLIP tower, the official DDIM
    scheduler."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        norm_num_groups=16,
        sample_size=image_size,
    )
    unet = UNet2DConditionModel(
        sample_size=image_size // 4,
        in_channels=in_channels,
        out_channels=4,
        block_out_channels=(32, 64, 128),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=64,
        attention_head_dim=4,
        norm_num_groups=32,
    )
    clip = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=64,
            intermediate_size=128,
            projection_dim=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=224,
            patch_size=32,
            hidden_act="quick_gelu",
            layer_norm_eps=1e-5,
        )
    )
    return {"vae": vae, "image_encoder": clip.eval(), "unet": unet, "scheduler": official_ddim_scheduler()}


def identity_projection(clip_features: int, context_features: int, extra_features: int = 0) -> CCProjection:
    """``CCProjection`` that passes the CLIP embedding through unchanged and ignores ``extra_features`` (the pose of
    Zero-1-to-3): the initialisation of both papers."""
    projection = CCProjection(clip_features + extra_features, context_features)
    with torch.no_grad():
        projection.projection.weight.zero_()
        projection.projection.weight[:, :clip_features].copy_(torch.eye(context_features, clip_features))
        projection.projection.bias.zero_()
    return projection


def take_autoencoder(pipe, folder: str | os.PathLike) -> None:
    """Replace ``pipe``'s VAE and CLIP tower by those of the model folder ``folder`` (float32), in place."""
    from diffusers import AutoencoderKL
    from transformers import CLIPVisionModelWithProjection

    from ..loading import quiet_loading

    folder = Path(folder)
    if not (folder / "vae").is_dir() or not (folder / "image_encoder").is_dir():
        raise ValueError(f"{folder} has no vae/ and image_encoder/ sub-folders (expected a model folder)")
    with quiet_loading():
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", dtype=torch.float32)
        clip = CLIPVisionModelWithProjection.from_pretrained(folder / "image_encoder", dtype=torch.float32)
    if clip.config.projection_dim != pipe.image_encoder.config.projection_dim:
        raise ValueError(
            f"{folder}'s CLIP tower gives {clip.config.projection_dim} features, the model's cc_projection takes "
            f"{pipe.image_encoder.config.projection_dim}"
        )
    pipe.register_modules(vae=vae, image_encoder=clip.eval())


def load_start(config: TrainConfig):
    """The model a run starts from: ``"scratch"`` or a model folder (converted official weights, earlier runs), in
    float32 whatever dtype the folder stores (mixed precision is accelerate's job); transformers would otherwise
    keep a stored fp16 CLIP tower in fp16. With ``config.autoencoder``, that folder's VAE and CLIP tower are used."""
    novel_view = config.pipeline == "zero123"
    pipeline_class = Zero123Pipeline if novel_view else Pix2GestaltPipeline
    if config.init == "scratch":  # identity cc_projection on CLIP (zero on the pose), as both papers initialise it
        components = scratch_components(config.image_size, config.seed, in_channels=8 if novel_view else 12)
        pipe = pipeline_class(
            **components, cc_projection=identity_projection(64, 64, POSE_FEATURES if novel_view else 0)
        )
    else:
        from ..loading import quiet_loading, validate_model_folder

        validate_model_folder(config.init, pipeline_class.__name__)
        with quiet_loading():
            pipe = pipeline_class.from_pretrained(config.init, dtype=torch.float32)
    if config.autoencoder is not None:
        take_autoencoder(pipe, config.autoencoder)
    return pipe


def step_generators(seed: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    """The numpy and torch generators of one step: a resumed run draws exactly what an uninterrupted run drew."""
    rng = np.random.default_rng([seed, step])
    return rng, torch.Generator().manual_seed(int(rng.integers(2**62)))


def load_batch(dataset: GestaltDataset, indices, image_size: int) -> dict[str, torch.Tensor]:
    """Samples -> model-space tensors: ``whole``, ``occluded`` ``(B, 3, S, S)`` in [-1, 1] and ``visible_mask``
    ``(B, 3, S, S)`` in {-1, 1}."""
    samples = [dataset[int(i)] for i in indices]
    return {
        "whole": preprocess_image(np.stack([s.whole for s in samples]), image_size, image_size),
        "occluded": preprocess_image(np.stack([s.occluded for s in samples]), image_size, image_size),
        "visible_mask": preprocess_mask(np.stack([s.visible_mask for s in samples]), image_size, image_size),
    }


def dropout_masks(count: int, rate: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample ``(drop_clip, drop_concat)`` bools: CLIP only below ``rate``, both in ``[rate, 2 rate)``, concat
    only in ``[2 rate, 3 rate)`` (the official ``prompt_mask`` / ``input_mask``)."""
    r = torch.rand(count, generator=generator)
    return r < 2 * rate, (r >= rate) & (r < 3 * rate)


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


def autoencoder_loss(
    pipe: Pix2GestaltPipeline, batch: dict, kl_weight: float, generator: torch.Generator
) -> torch.Tensor:
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


@torch.no_grad()
def calibrate_latents(vae, latents: torch.Tensor, image_size: int) -> None:
    """Centre the diffusion latents on the empty white canvas and scale them to unit standard deviation.

    ``latents_mean`` := the latent of a white image (per channel), ``latents_std`` := 1, ``scaling_factor`` :=
    1 / std of the centred latents (Latent Diffusion's rule; 0.18215 for SD's VAE). Every target is an object on
    white, so the background becomes 0 in diffusion space: at the last training timestep the little signal left
    (``sqrt(alpha_bar) ~ 0.07``) then agrees with the pure noise sampling starts from. Uncentred, the model learns to
    read the background level from that residual, and about a third of the samples started from pure noise came out
    with a grey or black background.
    """
    white = torch.ones(1, 3, image_size, image_size, device=vae.device, dtype=vae.dtype)
    canvas = vae.encode(white).latent_dist.mean.float().mean(dim=(0, 2, 3))
    scale = 1.0 / float((latents.float() - canvas.cpu().view(1, -1, 1, 1)).std())
    vae.register_to_config(latents_mean=canvas.tolist(), latents_std=[1.0] * len(canvas), scaling_factor=scale)
    logger.info("latents centred on the white canvas %s, scaling factor %.4f", canvas.tolist(), scale)


CHECKPOINT_STATE = "trainer_state.json"


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest COMPLETE checkpoint in ``folder``: a ``step_NNNNNNN`` folder holding its ``trainer_state.json``.

    A checkpoint is written as ``.step_NNNNNNN.partial`` and renamed only once its state file is in place, so a
    crash while saving leaves a partial folder that is ignored here (and removed by the next save)."""
    complete = [
        path for path in folder.glob("step_*") if path.name[5:].isdigit() and (path / CHECKPOINT_STATE).is_file()
    ]
    return max(complete, key=lambda path: int(path.name[5:]), default=None)


def save_checkpoint(accelerator, folder: Path, step: int) -> Path:
    """Save the training state at ``step`` to ``folder/step_NNNNNNN`` atomically (see :func:`latest_checkpoint`)."""
    target = folder / f"step_{step:07d}"
    for leftover in folder.glob(".step_*.partial"):  # from a run killed while saving
        shutil.rmtree(leftover, ignore_errors=True)
    staging = folder / f".{target.name}.partial"
    accelerator.save_state(str(staging))
    save_json(staging / CHECKPOINT_STATE, {"step": step})
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return target


def prune_checkpoints(folder: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest complete checkpoints (incomplete ones are left to the next save)."""
    complete = sorted(
        (path for path in folder.glob("step_*") if path.name[5:].isdigit() and (path / CHECKPOINT_STATE).is_file()),
        key=lambda path: int(path.name[5:]),
    )
    removed = complete[:-keep] if keep < len(complete) else []
    for path in removed:
        shutil.rmtree(path)
    return removed


def learning_rate_factor(step: int, warmup_steps: int, steps: int, decay_steps: int = 0) -> float:
    """Factor on the learning rate at ``step``: linear warm-up from ~0 over ``warmup_steps``, 1, then a linear decay
    reaching 0 at ``steps`` over the last ``decay_steps``. A function of the step alone, so resumed runs follow it."""
    warmup = max(1, warmup_steps)
    if step < warmup:
        return WARMUP_START + (1 - WARMUP_START) * step / warmup
    if decay_steps and step > steps - decay_steps:
        return max(0.0, (steps - step) / decay_steps)
    return 1.0


def _resume(accelerator, config: TrainConfig, output: Path) -> int:
    """Load the latest complete checkpoint of ``output`` if any; returns the step to continue from. Refuses settings
    that differ from the run's ``training.json`` (unless ``allow_changed_settings``) and a step count below the
    checkpoint's."""
    latest = latest_checkpoint(output / "checkpoints")
    if latest is None:
        return 0
    step = json.loads((latest / CHECKPOINT_STATE).read_text())["step"]
    saved_file = output / "training.json"
    saved = json.loads(saved_file.read_text()) if saved_file.is_file() else {}
    conflicts = config.resume_conflicts(saved)
    if conflicts and not config.allow_changed_settings:
        raise ValueError(
            f"{output} holds a run with other settings: {'; '.join(conflicts)}. Use another output folder, or "
            "--allow-changed-settings to resume with the new ones"
        )
    if config.steps < step:
        raise ValueError(
            f"{output} has already trained {step} steps; --steps {config.steps} would not train them again"
        )
    accelerator.load_state(str(latest))
    logger.info("resumed from %s at step %d", latest, step)
    return step


def _prepare_training(config: TrainConfig, accelerator):
    """The model, the trained modules' optimizer and schedule (prepared by accelerate), and the EMA (diffusion)."""
    from diffusers.training_utils import EMAModel

    pipe = load_start(config)
    pipe.set_progress_bar_config(disable=True)
    for module in (pipe.vae, pipe.image_encoder, pipe.unet, pipe.cc_projection):
        module.requires_grad_(False)
    names = ["unet", "cc_projection"] if config.stage == "diffusion" else ["vae"]
    scales = {"unet": 1.0, "vae": 1.0, "cc_projection": config.cc_projection_lr_scale}
    groups = [{"params": list(getattr(pipe, n).parameters()), "lr": config.learning_rate * scales[n]} for n in names]
    for name in names:
        getattr(pipe, name).requires_grad_(True).train()
    optimizer = torch.optim.AdamW(groups)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda n: learning_rate_factor(n, config.warmup_steps, config.steps, config.decay_steps)
    )
    *modules, optimizer, schedule = accelerator.prepare(*(getattr(pipe, n) for n in names), optimizer, schedule)
    for name, module in zip(names, modules):
        setattr(pipe, name, module)
    pipe.to(accelerator.device)
    ema = None
    if config.stage == "diffusion":
        ema = EMAModel(accelerator.unwrap_model(pipe.unet).parameters(), decay=config.ema_decay)
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)
    return pipe, optimizer, schedule, ema


def _step_loss(pipe, config: TrainConfig, dataset, cache, step: int) -> torch.Tensor:
    """The loss of training step ``step`` (its batch and randomness come from ``(seed, step)``)."""
    rng, generator = step_generators(config.seed, step)
    if config.pipeline == "zero123":
        from .novel_view import novel_view_loss, view_batch

        if config.stage == "vae":
            return autoencoder_loss(
                pipe, view_batch(dataset, rng, config.batch_size, config.image_size), config.kl_weight, generator
            )
        return novel_view_loss(pipe, cache, rng, generator, config.batch_size, config.dropout, config.target_latent)
    indices = rng.choice(len(dataset), config.batch_size, replace=len(dataset) < config.batch_size)
    if config.stage == "vae":
        return autoencoder_loss(pipe, load_batch(dataset, indices, config.image_size), config.kl_weight, generator)
    if cache is not None:
        encoded = {key: value[torch.as_tensor(indices)] for key, value in cache.items()}
    else:
        encoded = encode_batch(pipe, load_batch(dataset, indices, config.image_size))
    return diffusion_loss(pipe, encoded, config.dropout, generator, config.target_latent)


def _open_dataset(config: TrainConfig):
    """The run's dataset: pix2gestalt's format, or Zero-1-to-3's multi-view layout for ``pipeline="zero123"``."""
    if config.pipeline == "zero123":
        from .multiview import MultiViewDataset

        return MultiViewDataset(config.data)
    return GestaltDataset(config.data)


def _encode_for_training(pipe, dataset, config: TrainConfig):
    """For the diffusion stage, the dataset through the frozen VAE and CLIP, encoded once: always for Zero-1-to-3
    (every view serves as condition and target), for pix2gestalt up to ``cache_limit`` samples or when the latent
    scale is calibrated, kept in ``OUTPUT_DIR/encoded_dataset.safetensors`` for resumed runs. None when batches are
    encoded step by step."""
    if config.stage != "diffusion":
        return None
    if config.pipeline == "zero123":
        from .novel_view import EncodedViews

        return EncodedViews(pipe, dataset, config.image_size)
    if len(dataset) <= config.cache_limit or config.calibrate_latent_scale:
        return load_or_encode_dataset(pipe, dataset, config.image_size, Path(config.output_dir) / ENCODED_DATASET)
    return None


def _truncate_log(log: Path, step: int) -> None:
    """Drop the log entries past ``step``: steps a killed run logged after its last checkpoint are trained again."""
    if log.is_file():
        kept = [line for line in log.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
        write_atomic(log, "".join(line + "\n" for line in kept).encode())


def train(config: TrainConfig) -> Path:
    """Run (or resume) training; returns the folder of the final model (``OUTPUT_DIR/model``).

    Checkpoints go to ``OUTPUT_DIR/checkpoints/step_NNNNNNN`` every ``checkpoint_every`` steps; a run started again
    with the same output folder resumes from the latest complete one. Losses go to ``OUTPUT_DIR/train_log.jsonl``.
    """
    from accelerate import Accelerator

    dataset = _open_dataset(config)
    output = Path(config.output_dir)
    checkpoints = output / "checkpoints"
    accelerator = Accelerator(mixed_precision=config.mixed_precision, cpu=not torch.cuda.is_available())
    pipe, optimizer, schedule, ema = _prepare_training(config, accelerator)
    multiple = pipe.vae_scale_factor * 2 ** (len(pipe.unet.config.block_out_channels) - 1)
    if config.image_size % multiple:
        raise ValueError(f"image_size must be a multiple of {multiple} for this model, got {config.image_size}")
    start_step = _resume(accelerator, config, output)
    save_json(output / "training.json", asdict(config))
    _truncate_log(output / "train_log.jsonl", start_step)

    cache = _encode_for_training(pipe, dataset, config)
    if config.calibrate_latent_scale and config.stage == "diffusion":  # deterministic: a resumed run gets the same
        means = cache.mean if config.pipeline == "zero123" else cache["mean"]
        calibrate_latents(accelerator.unwrap_model(pipe.vae), means, config.image_size)
    started = time.perf_counter()
    progress = tqdm(
        range(start_step, config.steps), initial=start_step, total=config.steps, desc=f"train {config.stage}"
    )
    with open(output / "train_log.jsonl", "a") as log:
        for step in progress:
            with accelerator.autocast():
                loss = _step_loss(pipe, config, dataset, cache, step)
            accelerator.backward(loss)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            if ema is not None:
                ema.step(accelerator.unwrap_model(pipe.unet).parameters())
            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                record = {"step": done, "loss": float(loss.detach()), "lr": schedule.get_last_lr()[0]}
                log.write(json.dumps(record) + "\n")
                log.flush()
                progress.set_postfix(loss=f"{record['loss']:.4f}")
            if done % config.checkpoint_every == 0 or done == config.steps:
                save_checkpoint(accelerator, checkpoints, done)
                prune_checkpoints(checkpoints, config.keep_checkpoints)
    return _save_final(pipe, ema, accelerator, output, config, time.perf_counter() - started)


def _save_final(pipe, ema, accelerator, output: Path, config: TrainConfig, seconds: float) -> Path:
    """Save the model (EMA UNet weights for the diffusion stage) to ``output/model`` atomically."""
    final = type(pipe)(
        vae=accelerator.unwrap_model(pipe.vae),
        image_encoder=pipe.image_encoder,
        unet=accelerator.unwrap_model(pipe.unet),
        cc_projection=accelerator.unwrap_model(pipe.cc_projection),
        scheduler=pipe.scheduler,
    )
    if ema is not None:
        ema.store(final.unet.parameters())
        ema.copy_to(final.unet.parameters())
    staging = output / ".model.partial"
    shutil.rmtree(staging, ignore_errors=True)
    final.save_pretrained(staging, safe_serialization=True)
    save_json(staging / "training.json", {**asdict(config), "seconds_this_run": round(seconds, 1)})
    if ema is not None:
        ema.restore(final.unet.parameters())
    target = output / "model"
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return target
