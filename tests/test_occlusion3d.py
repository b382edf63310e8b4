"""The 3D occlusion benchmark machinery on two small scenes."""

from __future__ import annotations

import pytest

pytest.importorskip("open3d", reason="the 3D extra is not installed")

from p2g3d.jobs.occlusion3d import run_benchmark, summary_table  # noqa: E402
from p2g3d.scenes import make_scene  # noqa: E402


def test_oracle_masks_beat_visible_and_foreground_masks():
    scenes = [make_scene(seed, num_views=6, image_size=96) for seed in (0, 1)]
    rows = run_benchmark(scenes, resolution=64, num_points=5000)
    assert len(rows) == 6
    by_method = {m: [r.metrics for r in rows if r.method == m] for m in ("visible", "all-foreground", "amodal (oracle)")}
    mean = lambda method, key: sum(m[key] for m in by_method[method]) / 2  # noqa: E731
    for other in ("visible", "all-foreground"):
        assert mean("amodal (oracle)", "chamfer") < mean(other, "chamfer")
        assert mean("amodal (oracle)", "volume_iou") > mean(other, "volume_iou")
    table = summary_table(rows, "syncdreamer")
    assert "Protocol: syncdreamer; 2 scenes" in table and table.count("\n| ") == 4
