"""``dfmvr bench render`` runs end to end on the ICT model and reports its figures (no timing asserts)."""

from __future__ import annotations

import json

from dfmvr_core.cli.main import main


def test_bench_render_quick_prints_and_saves_json(tmp_path, ict_npz):
    out = tmp_path / "render.json"
    argv = ["bench", "render", "--model", str(ict_npz), "--quick", "--threads", "1", "--repeats", "1",
            "--steps", "rasterizer", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    saved = json.loads(out.read_text())
    cases = saved["results"]["cpu_1_threads"]
    assert set(cases) == {"rasterizer/ict_18k/batch1", "rasterizer/ict_x4_74k/batch1"}
    assert cases["rasterizer/ict_18k/batch1"]["triangles"] == 18460
    assert cases["rasterizer/ict_x4_74k/batch1"]["triangles"] == 4 * 18460
    for case in cases.values():
        assert case["fwd_bwd_ms_per_view"] > 0 and 0.3 < case["coverage_fraction"] < 0.8
    assert saved["config"]["image"] == [224, 224]
