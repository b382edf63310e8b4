"""Input preparation: visible masks from clicks and boxes, with SAM through transformers (``SamModel`` /
``SamProcessor``), for users who have a photo and a click instead of a visible mask.

Prompts follow the processor's own conventions, in pixels of the ORIGINAL image: a point is ``(x, y)`` (column,
row) with a label, 1 on the object and 0 on the background; a box is ``(x0, y0, x1, y1)``. Each prompt gives one
object: the clicked object's visible mask, and as many occluder masks as the user clicks occluders. Masks come back
as ``(H, W)`` bool in the image's frame (the project's mask type) with SAM's predicted IoU as their score.

Weights: a hub id (downloaded once when online; default ``facebook/sam-vit-base``, Apache-2.0) or a local folder
holding a copy of such a repository. transformers and torch are imported when a prompter is built.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .io import as_image

DEFAULT_SAM = "facebook/sam-vit-base"


@dataclass(frozen=True)
class Prompt:
    """Where one object is: points ``((x, y), ...)`` with ``labels`` (1 object, 0 background; default all 1),
    and / or a ``box`` ``(x0, y0, x1, y1)``; pixels of the original image."""

    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] | None = None
    box: tuple[float, float, float, float] | None = None

    def check(self, height: int, width: int) -> None:
        """InputError unless the prompt has a point or a box, inside a ``height`` x ``width`` image."""
        if not self.points and self.box is None:
            raise InputError("a prompt needs at least one point or a box")
        for x, y in self.points:
            if not (0 <= x < width and 0 <= y < height):
                raise InputError(f"point ({x}, {y}) lies outside the {width}x{height} image (x, y in pixels)")
        if self.labels is not None and (len(self.labels) != len(self.points) or set(self.labels) - {0, 1}):
            raise InputError(f"labels must be one 0 or 1 per point, got {self.labels} for {len(self.points)} points")
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
                raise InputError(
                    f"box {self.box} must be (x0, y0, x1, y1) with x0 < x1, y0 < y1 inside {width}x{height}"
                )


@dataclass(frozen=True, eq=False)
class PromptedMask:
    """A mask SAM gave for a prompt: ``(H, W)`` bool in the image's frame and SAM's predicted IoU."""

    mask: np.ndarray
    score: float
    prompt: Prompt = field(default_factory=Prompt)


class VisibleMaskPrompter:
    """Point / box prompts -> masks with SAM.

    Example::

        prompter = VisibleMaskPrompter.from_pretrained()  # facebook/sam-vit-base (online once) or a folder
        cup = prompter(image, Prompt(points=((120, 80),)))
        occluders = prompter.masks(image, [Prompt(points=((150, 90),))])
        completer(image, cup.mask)

    Args:
        model, processor: a transformers ``SamModel`` and its ``SamProcessor``.
    """

    def __init__(self, model, processor):
        self.model = model.eval()
        self.processor = processor

    @classmethod
    def from_pretrained(cls, path_or_hub_id: str | os.PathLike = DEFAULT_SAM, device=None) -> VisibleMaskPrompter:
        """Load SAM from a hub id or a local folder; one InputError naming what to download when it is missing."""
        import warnings

        from transformers import SamModel, SamProcessor

        from .loading import quiet_loading
        from .runtime import resolve_device

        try:
            with quiet_loading(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = SamModel.from_pretrained(str(path_or_hub_id))
                processor = SamProcessor.from_pretrained(str(path_or_hub_id))
        except (OSError, ValueError) as error:  # the hub's offline and missing-file errors are OSErrors
            raise InputError(
                f"the SAM weights {str(path_or_hub_id)!r} could not be loaded ({error.__class__.__name__}): run once "
                f"online to download {DEFAULT_SAM!r} into the Hugging Face cache, or pass a local copy of it; "
                "without SAM, draw or upload the visible mask instead"
            ) from error
        return cls(model.to(resolve_device(device)), processor)

    def __call__(self, image, prompt: Prompt, *, multimask: bool = True) -> PromptedMask:
        """The mask of one prompt: with ``multimask`` SAM proposes three and the best scored is kept."""
        (mask,) = self.masks(image, [prompt], multimask=multimask)
        return mask

    def masks(self, image, prompts: Sequence[Prompt], *, multimask: bool = True) -> list[PromptedMask]:
        """One mask per prompt (the object, its occluders), in the order of ``prompts``; the image is encoded once."""
        import torch

        rgb = as_image(image)
        if not prompts:
            raise InputError("give at least one prompt")
        for prompt in prompts:
            if not isinstance(prompt, Prompt):
                raise TypeError(f"prompts must be Prompt objects, got {type(prompt).__name__}")
            prompt.check(*rgb.shape[:2])
        device = self.model.device
        with torch.no_grad():
            encoded = self.processor(images=rgb, return_tensors="pt")
            embeddings = self.model.get_image_embeddings(encoded["pixel_values"].to(device))
            found = []
            for prompt in prompts:
                found.append(self._mask(rgb, prompt, embeddings, multimask))
        return found

    def _mask(self, rgb: np.ndarray, prompt: Prompt, embeddings, multimask: bool) -> PromptedMask:
        kwargs = {}
        if prompt.points:
            kwargs["input_points"] = [[[list(map(float, p)) for p in prompt.points]]]
            kwargs["input_labels"] = [[list(prompt.labels) if prompt.labels is not None else [1] * len(prompt.points)]]
        if prompt.box is not None:
            kwargs["input_boxes"] = [[list(map(float, prompt.box))]]
        inputs = self.processor(images=rgb, return_tensors="pt", **kwargs)
        prompt_inputs = {k: v.to(self.model.device) for k, v in inputs.items() if k.startswith("input_")}
        output = self.model(image_embeddings=embeddings, multimask_output=multimask, **prompt_inputs)
        masks = self.processor.image_processor.post_process_masks(
            output.pred_masks.cpu(), inputs["original_sizes"], inputs["reshaped_input_sizes"]
        )[0][0]  # (M, H, W) for the one object of the one image
        scores = output.iou_scores[0, 0].cpu()
        best = int(scores.argmax())
        return PromptedMask(masks[best].numpy().astype(bool), float(scores[best]), prompt)
