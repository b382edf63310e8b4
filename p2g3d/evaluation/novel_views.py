"""Novel-view evaluation: mask IoU of a Zero-1-to-3 model's generated views against true renders."""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from ..cameras import zero123_relative_poses
from ..masks import mask_iou


def evaluate_novel_views(
    pipe,
    dataset,
    *,
    targets_per_object: int = 3,
    num_inference_steps: int = 20,
    guidance_scale: float = 3.0,
    seed: int = 0,
    limit: int | None = None,
) -> dict:
    """Novel-view quality of a Zero-1-to-3 model on a multi-view dataset
    (:class:`~p2g3d.training.multiview.MultiViewDataset`, or anything whose items have ``images`` ``(V, S, S, 3)``
    uint8 and camera ``centers`` ``(V, 3)``).

    For each object, view 0 is the input and views ``1 .. targets_per_object`` are generated at the dataset's
    image size from their relative poses (seeded by object and view); the generated view's mask (gray <= 250) is
    compared with the true render's.
    Reported, as mean IoU in percent: ``generated`` and the baseline ``input_silhouette`` (the input view's mask
    taken as the target view's mask: what a model that ignores the pose would score).
    """
    import torch

    from ..masks import amodal_mask_from_whole
    from ..pipelines.image_processing import to_uint8
    from ..sampling import derive_seed

    scores: dict[str, list[float]] = {"generated": [], "input_silhouette": []}
    count = len(dataset) if limit is None else min(limit, len(dataset))
    for index in tqdm(range(count), desc="novel views", unit="object"):
        views = dataset[index]
        targets = list(range(1, min(1 + targets_per_object, len(views.images))))
        poses = zero123_relative_poses(np.repeat(views.centers[:1], len(targets), 0), views.centers[targets])
        size = views.images.shape[1]
        generators = [torch.Generator().manual_seed(derive_seed(seed, index, t)) for t in targets]
        output = pipe(
            image=views.images[0],
            polar=poses[:, 0].tolist(),
            azimuth=poses[:, 1].tolist(),
            radius=poses[:, 2].tolist(),
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            generator=generators,
            output_type="pt",
            height=size,
            width=size,
        )
        generated = amodal_mask_from_whole(to_uint8(output.images))
        truth = amodal_mask_from_whole(views.images[targets])
        source = amodal_mask_from_whole(views.images[0])
        for mask, true_mask in zip(generated, truth):
            scores["generated"].append(mask_iou(mask, true_mask))
            scores["input_silhouette"].append(mask_iou(source, true_mask))
    return {
        "objects": count,
        "views": len(scores["generated"]),
        **{f"miou_{m}": 100.0 * float(np.mean(v)) for m, v in scores.items()},
    }
