"""The settings of a training run: :class:`TrainConfig` (the ``p2g3d train`` options are generated from it).

Light to import (no torch), so that the command line answers ``--help`` and argument errors at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..settings import MAX_BATCH, MAX_IMAGE_SIZE
from ..validation import check_number

STAGES = ("diffusion", "vae")
PIPELINES = ("pix2gestalt", "zero123")


def _option(default, flag: str | None = None, help: str = "", **extra):
    """A :class:`TrainConfig` field with its command-line flag and help (the ``p2g3d train`` options come from here)."""
    return field(default=default, metadata={"flag": flag, "help": help, **extra})


@dataclass
class TrainConfig:
    """Settings of one training run (all saved to ``training.json`` in the output folder). Fields with a ``flag``
    are ``p2g3d train`` options."""

    data: str = _option(
        None,
        "--data",
        "dataset folder: pix2gestalt format, or Zero-1-to-3's multi-view layout for --pipeline zero123",
        required=True,
        type=Path,
    )
    output_dir: str = _option(None, "--output", "run folder (checkpoints, log, model/)", required=True, type=Path)
    init: str = _option("scratch", "--init", "'scratch' (small model) or a model folder to fine-tune")
    pipeline: str = _option("pix2gestalt", "--pipeline", "the model to train", choices=PIPELINES)
    autoencoder: str | None = _option(
        None,
        "--autoencoder",
        "model folder whose VAE and CLIP tower (frozen) the model uses instead of its own",
        type=Path,
    )
    stage: str = _option("diffusion", "--stage", "what to train (vae first for a model from scratch)", choices=STAGES)
    steps: int = _option(1000, "--steps", "optimisation steps")
    batch_size: int = _option(8, "--batch-size", "samples per step")
    learning_rate: float = _option(1e-4, "--lr", "UNet (or VAE) learning rate; cc_projection gets 10x")
    cc_projection_lr_scale: float = 10.0
    warmup_steps: int = _option(100, "--warmup", "linear warm-up steps")
    decay_steps: int = _option(
        0,
        "--decay-steps",
        "linear decay of the learning rate to 0 over the run's last N steps (0: constant after "
        "warm-up); set on a resumed run to anneal it",
    )
    ema_decay: float = _option(0.9999, "--ema-decay", "EMA decay of the UNet weights")
    dropout: float = 0.05
    kl_weight: float = 1e-6
    mixed_precision: str = _option(
        "no", "--mixed-precision", "accelerate mixed precision", choices=("no", "fp16", "bf16")
    )
    checkpoint_every: int = _option(500, "--checkpoint-every", "steps between checkpoints")
    log_every: int = 10
    seed: int = _option(0, "--seed", "seed of data order, noise, timesteps and dropout")
    image_size: int = _option(64, "--image-size", "training resolution in pixels")
    target_latent: str = _option(
        "sample",
        "--target-latent",
        "VAE posterior sample (official) or mean as the target latent",
        choices=("sample", "mode"),
    )
    calibrate_latent_scale: bool = _option(
        False,
        "--calibrate-latent-scale",
        "centre the latents on the white canvas and scale them to unit std (VAEs trained from scratch)",
    )
    cache_limit: int = 50000
    keep_checkpoints: int = _option(3, "--keep-checkpoints", "complete checkpoints kept (the newest)")
    allow_changed_settings: bool = _option(
        False, "--allow-changed-settings", "resume even though settings differ from the run's training.json"
    )

    def __post_init__(self):
        if self.data is None or self.output_dir is None:
            raise InputError("data and output_dir are required")
        self.data, self.output_dir = str(self.data), str(self.output_dir)
        self.autoencoder = None if self.autoencoder is None else str(self.autoencoder)
        choices = {
            "pipeline": PIPELINES,
            "stage": STAGES,
            "target_latent": ("sample", "mode"),
            "mixed_precision": ("no", "fp16", "bf16"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in (
            "steps",
            "batch_size",
            "checkpoint_every",
            "log_every",
            "keep_checkpoints",
            "cache_limit",
        ):
            check_number(self, name, integer=True, low=1)
        check_number(self, "image_size", integer=True, low=1, high=MAX_IMAGE_SIZE)
        check_number(self, "batch_size", integer=True, low=1, high=MAX_BATCH)
        check_number(self, "warmup_steps", integer=True, low=0)
        check_number(self, "decay_steps", integer=True, low=0, high=self.steps)
        check_number(self, "seed", integer=True, low=0)
        check_number(self, "learning_rate", low=0, low_open=True)
        check_number(self, "cc_projection_lr_scale", low=0, low_open=True)
        check_number(self, "ema_decay", low=0, high=1)
        check_number(self, "dropout", low=0, high=1 / 3)
        check_number(self, "kl_weight", low=0)

    def resume_conflicts(self, saved: dict) -> list[str]:
        """Settings that differ from a run's saved ``training.json`` and would change what a resumed run trains
        (the step count, the decay at its end, logging and checkpointing may change)."""
        free = {
            "steps",
            "decay_steps",
            "checkpoint_every",
            "log_every",
            "keep_checkpoints",
            "cache_limit",
            "allow_changed_settings",
        }
        return sorted(
            f"{name} (was {saved[name]!r}, now {value!r})"
            for name, value in vars(self).items()
            if name not in free and name in saved and saved[name] != value
        )
