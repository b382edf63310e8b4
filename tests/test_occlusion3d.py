"""The 3D occlusion benchmark machinery on two small scenes."""

from __future__ import annotations

from conftest import requires_3d

from p2g3d.evaluation.occlusion3d import run_benchmark, summary_table
from p2g3d.jobs.stages import benchmark_carver
from p2g3d.scenes import make_scene


@requires_3d
def test_oracle_masks_beat_visible_and_foreground_masks():
    scenes = [make_scene(seed, num_views=6, image_size=96) for seed in (0, 1)]
    rows = run_benchmark(scenes, benchmark_carver(64), num_points=5000)
    assert len(rows) == 6
    by_method = {
        m: [r.metrics for r in rows if r.method == m] for m in ("visible", "all-foreground", "amodal (oracle)")
    }
    mean = lambda method, key: sum(m[key] for m in by_method[method]) / 2  # noqa: E731
    for other in ("visible", "all-foreground"):
        assert mean("amodal (oracle)", "chamfer") < mean(other, "chamfer")
        assert mean("amodal (oracle)", "volume_iou") > mean(other, "volume_iou")
    table = summary_table(rows, "syncdreamer")
    assert "Protocol: syncdreamer; 2 scenes" in table and table.count("\n| ") == 4


class CountingCompleter:
    """Records every completion call; returns the visible mask as the amodal mask."""

    def __init__(self, completer):
        self.completer, self.seeds = completer, []

    def __call__(self, image, visible_mask, *, seed, item, show_progress=True):
        self.seeds.append((seed, item))
        return self.completer(image, visible_mask, seed=seed, item=item, show_progress=show_progress)


@requires_3d
def test_each_view_is_completed_once_with_its_own_seed(tiny_pipeline, tmp_path):
    """The completed masks are computed once per view, carved and shown from the same arrays, and every view of
    every scene is its own item of the seed rule under the run's seed."""
    from p2g3d.completer import AmodalCompleter
    from p2g3d.evaluation.occlusion3d import COMPLETED, scene_masks

    scenes = [make_scene(seed, num_views=4, image_size=64) for seed in (0, 1)]
    counting = CountingCompleter(AmodalCompleter(tiny_pipeline, num_samples=1, num_inference_steps=2))
    rows = run_benchmark(scenes, benchmark_carver(32), counting, seed=11, num_points=500, output=tmp_path)
    assert counting.seeds == [(11, f"scene_{scene}_view_{view}") for scene in (0, 1) for view in range(4)]
    assert len(set(counting.seeds)) == 8
    assert [r.method for r in rows].count(COMPLETED) == 2
    assert (tmp_path / "scene_1" / "pix2gestalt.glb").is_file() and (tmp_path / "scene_0" / "preview.png").is_file()
    masks = scene_masks(scenes[0], counting, seed=11)
    assert all(mask.dtype == bool and mask.shape == (64, 64) for mask in masks[COMPLETED])
