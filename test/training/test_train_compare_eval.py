"""``dfmvr eval --compare`` end to end on the tiny benchmark: the table's numbers equal evaluating each checkpoint
alone, resume skips finished entries, failing entries are named and marked (or stop the run with fail_fast)."""

from __future__ import annotations

import json

import cv2
import pytest
import torch
import yaml
from _trainer_testlib import SMOKE_CONFIG, tiny_datasets

import dfmvr_core.cli.main as cli_main
import dfmvr_training.compare_eval as compare_eval
from dfmvr_core.config import from_mapping
from dfmvr_core.errors import ModelFileError
from dfmvr_core.inference import save_checkpoint
from dfmvr_core.networks.baseline_config import BaselineNetworkConfig
from dfmvr_core.networks.dfmvr_net import DFMVRNet
from dfmvr_core.networks.net_config import NetworkConfig
from dfmvr_core.networks.registry import build_network
from dfmvr_training.benchmark_eval import evaluate_checkpoint
from dfmvr_training.compare_eval import run_comparison
from dfmvr_training.compare_spec import load_compare_spec

EXTRA = {"step": 30, "epoch": 7, "train_config": {"batch_size": 2, "device": "cpu", "data": ["d"]}, "train_seconds": 75}


def _tiny_net(ict_model, seed: int) -> DFMVRNet:
    """The smoke config's tiny DF-MVR with its (partly zero-initialised) weights perturbed, so that the views given
    change the prediction."""
    config = from_mapping(NetworkConfig, yaml.safe_load(SMOKE_CONFIG.read_text())["train"]["network_config"])
    torch.manual_seed(seed)
    net = DFMVRNet(config, ict_model.coefficient_sizes, ict_model.expression_kind)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net


@pytest.fixture(scope="module")
def setup(tmp_path_factory, ict_npz, ict_model):
    data = tiny_datasets(tmp_path_factory, ict_npz)
    root = tmp_path_factory.mktemp("compare")
    net = _tiny_net(ict_model, 0)
    checkpoint = save_checkpoint(root / "a.pt", net, model_fingerprint=ict_model.fingerprint(), extra=EXTRA)
    return {"data": data, "net": net, "checkpoint": checkpoint, "fingerprint": ict_model.fingerprint()}


def _spec(setup, out, checkpoints, **fields):
    base = {
        "benchmark": str(setup["data"]["benchmark"]),
        "morphable_model": str(setup["data"]["model"]),
        "out_dir": str(out),
        "map_size": 96,
        "entries": [
            {"label": "DF-MVR tiny", "checkpoint": str(checkpoints[0])},
            {"label": "DF-MVR tiny (front)", "checkpoint": str(checkpoints[1]), "views": ["front"]},
        ],
    }
    return load_compare_spec({**base, **fields})


def test_compare_equals_single_evaluations_writes_the_table_and_resumes(setup, tmp_path, monkeypatch):
    out, checkpoints = tmp_path / "cmp", (setup["checkpoint"], tmp_path / "b.pt")
    checkpoints[1].write_bytes(setup["checkpoint"].read_bytes())  # the same network (and budget) in another file
    result = run_comparison(_spec(setup, out, checkpoints), progress=False)
    rows = {row["label"]: row for row in result["entries"]}
    assert [row["label"] for row in result["entries"]] == ["DF-MVR tiny", "DF-MVR tiny (front)", "Mean face"]
    assert all(row["status"] == "ok" and not row["resumed"] for row in rows.values()) and result["failed"] == []
    assert result["count"] == 2 and rows["DF-MVR tiny"]["views"] == ["left", "front", "right"]

    # the same numbers as evaluating the checkpoint alone (dfmvr eval --benchmark --views front), which differ from
    # the same network given all three views
    bench, model = setup["data"]["benchmark"], setup["data"]["model"]
    alone = evaluate_checkpoint(checkpoints[1], bench, model, tmp_path / "alone", views=["front"], error_maps=0)
    for key in ("rmse_mm", "scan_to_mesh_mm", "rmse_mm_with_scale", "rmse_mm_rig_scale"):
        for stat in ("mean", "std"):
            expected = alone["methods"]["network"][key][stat]
            assert rows["DF-MVR tiny (front)"][key][stat] == pytest.approx(expected, rel=1e-9)
            assert rows["Mean face"][key][stat] == pytest.approx(alone["methods"]["mean_face"][key][stat], rel=1e-9)
    assert rows["DF-MVR tiny"]["per_sample"]["rmse_mm"] != rows["DF-MVR tiny (front)"]["per_sample"]["rmse_mm"]
    # where the error comes from: the same split as evaluating alone, for the networks only
    sources, alone_sources = rows["DF-MVR tiny (front)"]["error_sources"], alone["error_sources"]
    for key in ("rmse_mm_true_identity", "rmse_mm_true_expression"):
        assert sources[key]["mean"] == pytest.approx(alone_sources[key]["mean"], rel=1e-9)
    assert sources["identity_variance_explained"] == pytest.approx(alone_sources["identity_variance_explained"])
    assert "error_sources" not in rows["Mean face"] and "identity_variance_explained" in alone["definitions"]
    assert result["metric"]["rmse_mm_true_identity"] == alone["definitions"]["rmse_mm_true_identity"]
    # a similarity alignment can only fit better than a rigid one (it includes scale 1)
    for row in rows.values():
        per_sample = row["per_sample"]
        assert all(s <= r + 1e-6 for s, r in zip(per_sample["rmse_mm_with_scale"], per_sample["rmse_mm"], strict=True))
    assert "rmse_mm_with_scale" in result["metric"] and "scale" in result["metric"]["rmse_mm_with_scale"]

    # the files: table, JSON, one error map per entry and sample
    table = (out / "comparison.md").read_text()
    assert "Where the error comes from" in table
    explained = rows["DF-MVR tiny"]["error_sources"]["identity_variance_explained"]
    assert f"| {round(100 * explained)} % |" in table.split("Where the error comes from")[1]
    for label, row in rows.items():
        line = next(line for line in table.splitlines() if line.startswith(f"| {label} |"))
        assert f"{row['rmse_mm']['mean']:.3f} ± {row['rmse_mm']['std']:.3f}" in line
        assert f"{row['scan_to_mesh_mm']['mean']:.3f} ± {row['scan_to_mesh_mm']['std']:.3f}" in line
        rig, scaled = row["rmse_mm_rig_scale"], row["rmse_mm_with_scale"]
        assert (
            f"| {row['rmse_mm']['mean']:.3f} ± {row['rmse_mm']['std']:.3f} | {rig['mean']:.3f} ± {rig['std']:.3f} | "
            f"{scaled['mean']:.3f} ±" in line
        )
    # one view given: the rig cannot triangulate, the reconstructor keeps the decoded size
    front = rows["DF-MVR tiny (front)"]["per_sample"]
    assert front["rmse_mm_rig_scale"] == pytest.approx(front["rmse_mm"], abs=1e-9)
    assert "| 30 × 2 | 60 | 1 min | cpu |" in table and "smoke (dfmvr)" in table
    assert result["budgets_equal"] is True and "Training budgets: equal, 60 training samples" in table
    assert json.loads((out / "comparison.json").read_text()) == json.loads(json.dumps(result))
    for slug in ("df-mvr-tiny", "df-mvr-tiny-front", "mean-face"):
        maps = sorted(p.name for p in (out / "entries" / slug / "error_maps").iterdir())
        assert maps == ["00000.png", "00001.png"]
        assert cv2.imread(str(out / "entries" / slug / "error_maps" / "00001.png")).shape == (96, 96, 3)

    # resume: nothing is evaluated again
    def refuse(*args, **kwargs):
        raise AssertionError("an entry was evaluated again")

    monkeypatch.setattr(compare_eval, "evaluate_meshes", refuse)
    monkeypatch.setattr(compare_eval, "mean_face_baseline", refuse)
    again = run_comparison(_spec(setup, out, checkpoints), progress=False)
    assert all(row["resumed"] for row in again["entries"])
    assert [r["per_sample"] for r in again["entries"]] == [r["per_sample"] for r in result["entries"]]

    # ... except an entry whose checkpoint file changed (another SHA-256; here: no budget recorded any more)
    monkeypatch.undo()
    calls = []
    real = compare_eval.evaluate_meshes
    monkeypatch.setattr(compare_eval, "evaluate_meshes", lambda *a, **k: calls.append(1) or real(*a, **k))
    save_checkpoint(checkpoints[1], setup["net"], model_fingerprint=setup["fingerprint"], extra={})
    third = run_comparison(_spec(setup, out, checkpoints), progress=False)
    assert len(calls) == 1 and [row["resumed"] for row in third["entries"]] == [True, False, True]
    assert third["entries"][1]["per_sample"] == result["entries"][1]["per_sample"]  # same weights, same numbers
    assert third["budgets_equal"] is None and "not recorded (n/a) for DF-MVR tiny (front)" in third["budgets_statement"]
    assert "| 30 × 2 | 60 | 1 min | cpu |" in (out / "comparison.md").read_text()
    assert "| n/a | n/a | n/a | n/a |" in (out / "comparison.md").read_text()


def _baseline_checkpoint(path, ict_model, **config):
    """A freshly initialised tiny baseline (64-pixel input, ResNet-18 at quarter width)."""
    config = BaselineNetworkConfig(backbone_depth=18, backbone_width=0.25, input_size=64, **config)
    torch.manual_seed(0)
    net = build_network(config, ict_model.coefficient_sizes, ict_model.expression_kind)
    return save_checkpoint(
        path, net, model_fingerprint=ict_model.fingerprint(), extra={"step": 60, "train_config": {"batch_size": 1}}
    )


def test_failing_entries_are_marked_and_named_and_baselines_are_rows(setup, tmp_path, ict_model, capsys):
    cnet = _baseline_checkpoint(tmp_path / "cnet.pt", ict_model, name="d3d-cnet", kind="deep3dface", aggregation="cnet")
    uh = _baseline_checkpoint(tmp_path / "uh.pt", ict_model, name="uh", kind="uh_e2far")
    rnet = _baseline_checkpoint(tmp_path / "rnet.pt", ict_model, name="d3d", kind="deep3dface")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    other_model = save_checkpoint(tmp_path / "other.pt", setup["net"], model_fingerprint="0123456789abcdef")
    spec_file = tmp_path / "spec.yaml"
    spec = {
        "benchmark": str(setup["data"]["benchmark"]),
        "morphable_model": str(setup["data"]["model"]),
        "out_dir": str(tmp_path / "ignored"),
        "map_size": 96,
        "error_maps": 1,
        "entries": [
            {"label": "good", "checkpoint": str(setup["checkpoint"]), "views": ["front"]},
            {"label": "missing", "checkpoint": str(tmp_path / "absent.pt")},
        ],
    }
    spec_file.write_text(yaml.safe_dump({"compare": spec}))
    out = tmp_path / "out"
    argv = ["eval", "--compare", str(spec_file), "--out", str(out), "--samples", "1", "--no-mean-face", "--quiet"]
    argv += ["--entry", f"corrupt={corrupt}", "--entry", f"other model={other_model}:left,right"]
    argv += ["--entry", f"Deep3DFace={rnet}:front", "--entry", f"Deep3DFace C-Net={cnet}"]
    argv += ["--entry", f"UH-E2FAR={uh}:front"]
    assert cli_main.main(argv) == 1  # finished, with failures
    captured = capsys.readouterr()
    err = captured.err
    assert "entry 'missing' failed: ModelFileError" in err and "absent.pt: checkpoint not found" in err
    assert "entry 'corrupt' failed" in captured.err and "corrupt.pt" in captured.err
    assert "entry 'other model' failed" in captured.err and "fingerprint" in captured.err
    result = json.loads((out / "comparison.json").read_text())
    assert result["count"] == 1 and result["failed"] == ["missing", "corrupt", "other model"]
    labels = ["good", "missing", "corrupt", "other model", "Deep3DFace", "Deep3DFace C-Net", "UH-E2FAR"]
    assert [row["label"] for row in result["entries"]] == labels
    assert result["entries"][3]["views"] == ["left", "right"]
    rows = {row["label"]: row for row in result["entries"]}
    assert rows["Deep3DFace C-Net"]["network"]["kind"] == "deep3dface" and rows["UH-E2FAR"]["status"] == "ok"
    # budgets: DF-MVR 30 × 2, the baselines 60 × 1: the same 60 training samples seen
    assert result["budgets_equal"] is True
    table = (out / "comparison.md").read_text()
    assert table == captured.out.split("wrote ")[0].rstrip("\n") + "\n"
    assert "| missing | n/a | left, front, right (3) | **failed** |" in table and "- corrupt: ModelFileError" in table
    assert "| good | smoke (dfmvr) | front (1) |" in table and not (out / "entries" / "missing").exists()
    assert "| Deep3DFace C-Net | d3d-cnet (deep3dface) | left, front, right (3) |" in table
    assert "| Deep3DFace | d3d (deep3dface) | front (1) |" in table
    assert "| UH-E2FAR | uh (uh_e2far) | front (1) |" in table and "| 60 × 1 | 60 |" in table

    # fail_fast: the first failing entry stops the run, named (the good entry resumes)
    with pytest.raises(ModelFileError, match=r"entry 'missing' \(.*absent.pt\): .*checkpoint not found"):
        run_comparison(load_compare_spec(spec_file, {"out_dir": str(out), "eval_samples": 1, "fail_fast": True}))
