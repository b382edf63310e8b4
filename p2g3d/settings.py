"""The settings dataclasses of the sampling stages and of the runtime: every default and value check lives here
once.

The command line is generated from settings fields (:func:`option`: ``flag``, ``help``, ``choices`` and ``type`` in
each field's metadata; jobs nest these dataclasses in their own), and the stages validate by building them, so a
bad value fails before any model loads, with the same message from Python and from the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import InputError
from .framing import FRAMINGS
from .masks import MASK_RULES
from .schedulers import SCHEDULERS
from .validation import check_choice, check_number

DTYPES = ("fp32", "fp16", "bf16")  # names of p2g3d.runtime.DTYPES, here without importing torch
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")  # torch.compile modes (p2g3d.acceleration)
UNET_WEIGHTS = ("ema", "raw")  # which UNet weights p2g3d.convert takes from a checkpoint
# Limits on what multiplies memory or time, checked before any work starts.
MAX_SAMPLES = 64  # samples per object
MAX_BATCH = 1024  # (item, sample) pairs per model call
MAX_VIEWS = 72  # generated views per ring (5 degrees apart)
MAX_IMAGE_SIZE = 1024  # pixels per side of generated training images and of training
DEFAULT_STEPS = 50  # pix2gestalt sampling steps and guidance for models that save no defaults of their own
DEFAULT_GUIDANCE = 2.0
DEFAULT_UNET_ROWS = 16  # default UNet batch: 8 (object, sample) pairs with guidance ([uncond; cond]), 16 without


def option(default=None, flag: str | None = None, help: str = "", **extra):
    """A settings field with its command-line ``flag`` (``--name``, or a bare name for a positional argument) and
    ``help``; ``extra`` may give ``choices``, ``type`` (the parser's type, e.g. ``Path``), ``required``,
    ``action="append"`` (a repeatable option: a list) or ``aliases`` (other flags, kept for older command lines). Fields
    without a flag are Python-only."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"flag": flag, "help": help, **extra})
    return field(default=default, metadata={"flag": flag, "help": help, **extra})


def nested(settings_class):
    """A field holding a settings dataclass whose flags the command line adds beside its owner's."""
    return field(default_factory=settings_class, metadata={"nested": True})


@dataclass(frozen=True)
class RuntimeSettings:
    """Where and how a job runs: the base seed of the seed rule (:mod:`p2g3d.sampling`), the device and the
    weights' dtype."""

    seed: int = option(0, "--seed", "base seed (the seed rule: samples derive from it, the item and the object)")
    device: str | None = option(None, "--device", "cpu, cuda, cuda:N (default: cuda if available)")
    dtype: str | None = option(None, "--dtype", "weights dtype (default: fp16 on cuda, else fp32)", choices=DTYPES)

    def __post_init__(self):
        check_number(self, "seed", integer=True, low=0)
        if self.dtype is not None:
            check_choice(self, "dtype", DTYPES)


@dataclass(frozen=True)
class ModelSettings:
    """Which pix2gestalt model a job loads, and how: :meth:`p2g3d.AmodalCompleter.from_pretrained`'s ``path_or_hub_id``
    and ``compile_mode``."""

    model: str | None = option(
        None, "--model", "pix2gestalt model folder or hub id (default: the embedded demonstration model)"
    )
    compile_mode: str | None = option(
        None,
        "--compile",
        "torch.compile the UNet (checked against eager on load; reduce-overhead adds CUDA graphs); default eager",
        choices=COMPILE_MODES,
    )

    def __post_init__(self):
        if self.compile_mode is not None:
            check_choice(self, "compile_mode", COMPILE_MODES)

    @property
    def identity(self) -> str:
        """How outputs record the model: its folder or hub id, or ``"embedded"``."""
        return str(self.model) if self.model is not None else "embedded"


@dataclass(frozen=True)
class SamplingSettings:
    """Settings every diffusion stage shares. The command line is generated from these fields (``flag`` and
    ``help`` in each field's metadata), so a default lives here and nowhere else."""

    num_inference_steps: int = field(
        default=50, metadata={"flag": "--steps", "help": "sampling steps (at least 2 with the official DDIM)"}
    )
    guidance_scale: float = field(
        default=2.0, metadata={"flag": "--guidance", "help": "classifier-free guidance scale"}
    )
    eta: float = field(default=1.0, metadata={"flag": "--eta", "help": "DDIM eta (1 official, 0 deterministic)"})
    scheduler: str | None = field(
        default=None,
        metadata={
            "flag": "--scheduler",
            "help": "sampler (default: the model's own, the official DDIM for converted models; p2g3d.schedulers)",
            "choices": SCHEDULERS,
        },
    )
    batch_size: int = field(default=8, metadata={"flag": "--batch-size", "help": "(item, sample) pairs per model call"})

    def __post_init__(self):
        if self.num_inference_steps is not None:
            check_number(self, "num_inference_steps", integer=True, low=1, high=1000)
        if self.batch_size is not None:
            check_number(self, "batch_size", integer=True, low=1, high=MAX_BATCH)
        if self.guidance_scale is not None:
            check_number(self, "guidance_scale")
        check_number(self, "eta", low=0)
        if self.scheduler is not None:
            check_choice(self, "scheduler", SCHEDULERS)


@dataclass(frozen=True)
class CompletionSettings(SamplingSettings):
    """Settings of :class:`AmodalCompleter` (the ``p2g3d complete`` options are generated from these fields).

    Attributes:
        num_samples: samples per object, voted per pixel (the paper votes over several).
        num_inference_steps: requested sampling steps; None: the model's saved default (a distilled student's),
            else 50 (official default 200; 50 is close and 4x faster).
        guidance_scale: classifier-free guidance; None: the model's saved default (1 for a student), else 2.0
            (official).
        guidance_interval: ``(low, high)``: guidance only at the steps whose ``t / 1000`` lies in ``[low, high]``
            (one conditional UNet call at the others); None: every step (official).
        eta: DDIM eta (official 1.0).
        framing: ``"squash"`` (official, whole image resized to the square) or ``"pad"`` (aspect kept).
        mask_rule: ``"rgb"`` (correct RGB->gray, default) or ``"official"`` (the official channel-swapped gray).
        batch_size: (object, sample) pairs per pipeline call; lower it when memory is short. None: 16 UNet rows,
            that is 8 pairs with guidance and 16 without (a distilled student).
        keep_detached: keep the parts of a sample's mask not connected to the visible mask (the official read keeps
            every pixel; by default only the object attached to its visible part is kept).
    """

    num_inference_steps: int | None = field(
        default=None,
        metadata={
            "flag": "--steps",
            "help": f"sampling steps (default: the model's own; {DEFAULT_STEPS} unless it saves one)",
        },
    )
    guidance_scale: float | None = field(
        default=None,
        metadata={
            "flag": "--guidance",
            "help": f"guidance scale (default: the model's own; {DEFAULT_GUIDANCE} unless it saves one)",
        },
    )
    guidance_interval: tuple[float, float] | None = field(
        default=None,
        metadata={
            "flag": "--guidance-interval",
            "nargs": 2,
            "metavar": ("LOW", "HIGH"),
            "help": "guidance only at the steps with t/1000 in [LOW, HIGH], one UNet call at the others",
        },
    )
    batch_size: int | None = field(
        default=None,
        metadata={
            "flag": "--batch-size",
            "help": f"(item, sample) pairs per model call (default: {DEFAULT_UNET_ROWS} UNet rows, i.e. "
            f"{DEFAULT_UNET_ROWS // 2} with guidance, {DEFAULT_UNET_ROWS} without)",
        },
    )
    num_samples: int = field(default=4, metadata={"flag": "--samples", "help": "samples per object, voted per pixel"})
    framing: str = field(
        default="squash", metadata={"flag": "--framing", "choices": FRAMINGS, "help": "squash is official"}
    )
    mask_rule: str = field(
        default="rgb", metadata={"flag": "--mask-rule", "choices": MASK_RULES, "help": "gray rule for masks"}
    )
    keep_detached: bool = field(
        default=False, metadata={"flag": "--keep-detached", "help": "keep mask parts not connected to the visible mask"}
    )

    def __post_init__(self):
        super().__post_init__()
        check_number(self, "num_samples", integer=True, low=1, high=MAX_SAMPLES)
        if self.guidance_interval is not None:
            interval = tuple(self.guidance_interval)
            valid = len(interval) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in interval
            )
            if not valid or not 0 <= interval[0] <= interval[1] <= 1:
                raise InputError(f"guidance_interval must be (low, high) with 0 <= low <= high <= 1, got {interval}")
            object.__setattr__(self, "guidance_interval", (float(interval[0]), float(interval[1])))
        check_choice(self, "framing", FRAMINGS)
        check_choice(self, "mask_rule", MASK_RULES)


@dataclass(frozen=True)
class NovelViewSettings(SamplingSettings):
    """Settings of :class:`~p2g3d.novel_views.NovelViewGenerator` (the ``p2g3d views`` options are generated from
    these fields); as :class:`SamplingSettings` with Zero-1-to-3's official guidance 3.0."""

    guidance_scale: float = field(
        default=3.0, metadata={"flag": "--guidance", "help": "classifier-free guidance scale"}
    )
