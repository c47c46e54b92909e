"""``dfmvr bench model`` runs end to end and reports the cost the issue's targets are about (no timing asserts)."""

from __future__ import annotations

import json

from dfmvr_core.cli.main import main


def test_bench_model_small_prints_and_saves_json(tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["bench", "model", "--configs", "small", "--repeats", "1", "--threads", "1", "--out", str(out)]) == 0
    saved = json.loads((out / "model-cpu1.json").read_text())
    small = saved["figures"]["small"]
    assert saved["name"] == "model" and saved["machine"]["cpu_count"] >= 1
    assert small["parameters"] <= 15_000_000 and small["gflops_per_triplet"] <= 12
    assert small["cpu_latency_per_triplet_ms"]["repeats"] == 1 and small["cpu_latency_per_triplet_ms"]["p50_ms"] > 0
    assert set(saved["targets_met"]) == {"small_gflops_le_12", "small_params_le_15M", "small_cpu_p50_le_250ms"}
    assert '"name": "model"' in capsys.readouterr().out
