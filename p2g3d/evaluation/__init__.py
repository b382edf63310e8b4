"""Evaluation, one home for every protocol the commands, the benchmarks and training use.

* :mod:`.readers`: benchmark annotation files (COCO-style amodal annotations), shared with ``p2g3d batch``;
* :mod:`.amodal`: amodal mIoU (the pix2gestalt paper's Table 1 protocol) with baselines;
* :mod:`.novel_views`: mask IoU of generated novel views;
* :mod:`.occlusion3d`: the multi-view 3D protocol (reconstruct from each method's masks, Open3D metrics);
* :mod:`.single_view`: the single-view 3D protocol (one occluded image -> image-to-3D backend -> mesh).

Reconstructors and image-to-3D backends are passed in (the core never imports the adapters); the jobs and the
benchmark scripts choose them.
"""
