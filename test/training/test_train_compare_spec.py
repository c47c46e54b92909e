"""The ``dfmvr eval --compare`` spec (YAML, --entry), training budgets read from checkpoints, and usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import dfmvr_core.cli.main as cli_main
from dfmvr_core.errors import ConfigError
from dfmvr_training.compare_budget import TrainingBudget, budget_from_extra, budgets_statement, format_seconds
from dfmvr_training.compare_spec import CompareEntry, load_compare_spec, parse_entry_arg

REPO = Path(__file__).resolve().parents[2]
BASE = {"benchmark": "b", "morphable_model": "m.npz", "out_dir": "o"}


def _entry(label, checkpoint="c.pt", **fields):
    return {"label": label, "checkpoint": checkpoint, **fields}


def test_the_example_spec_loads():
    spec = load_compare_spec(REPO / "config" / "eval" / "compare_example.yaml")
    labels = [e.label for e in spec.entries]
    assert len(labels) == 6 and "UH-E2FAR" in labels and spec.mean_face and spec.eval_samples == 100
    front = next(e for e in spec.entries if e.label == "DF-MVR (small) front only")
    assert front.views == ("front",) and front.slug == "df-mvr-small-front-only"
    assert spec.entries[0].views == ("left", "front", "right") and spec.entries[0].checkpoint == Path(
        "runs/paper/model.pt"
    )


def test_spec_fields_defaults_and_overrides(tmp_path):
    spec = load_compare_spec({**BASE, "entries": [_entry("A", views=["right", "left"])]})
    assert spec.entries[0].views == ("left", "right")  # camera order, whatever the YAML's
    assert spec.mean_face and spec.eval_samples is None and spec.mask_source == "landmarks" and not spec.fail_fast
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"compare": {**BASE, "entries": [_entry("A")]}}))
    extra = CompareEntry(label="B", checkpoint=Path("d.pt"), views=("front",))
    spec = load_compare_spec(path, {"out_dir": "elsewhere", "eval_samples": 3, "mean_face": False, "entries": [extra]})
    assert spec.out_dir == Path("elsewhere") and spec.eval_samples == 3 and not spec.mean_face
    assert [e.label for e in spec.entries] == ["A", "B"] and spec.entries[1].views == ("front",)
    only_mean = load_compare_spec(BASE)
    assert only_mean.entries == () and only_mean.mean_face


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {**BASE, "entries": [_entry("A"), _entry("front only", views=["front", "top"])]},
            r"entries\[1\] \('front only'\)\.views",
        ),
        ({**BASE, "entries": [_entry("A"), {"label": "B"}]}, r"entries\[1\] \('B'\)\.checkpoint: required"),
        ({**BASE, "entries": [_entry("A", view=["front"])]}, r"entries\[0\] \('A'\)\.view: unknown field"),
        ({**BASE, "entries": [_entry("A", views=[])]}, r"entries\[0\] \('A'\)\.views: expected a non-empty"),
        ({**BASE, "entries": [_entry("A"), _entry("a")]}, r"entries\[1\] \('a'\)\.label: same name .* entries\[0\]"),
        ({**BASE, "entries": [_entry("Mean face")]}, r"entries\[0\] \('Mean face'\)\.label: reserved"),
        ({**BASE, "entries": [_entry("A|B")]}, r"entries\[0\] \('A\|B'\)\.label"),
        ({**BASE, "entries": "A"}, r"compare\.entries: expected a list"),
        ({**BASE, "mean_face": False}, r"compare\.entries: nothing to compare"),
        ({**BASE, "eval_samples": 0}, r"compare\.eval_samples"),
        ({**BASE, "device": "gpu"}, r"compare\.device"),
        ({**BASE, "mask_source": "parser"}, r"compare\.mask_source"),
        ({**BASE, "mean_face": "yes"}, r"compare\.mean_face: expected true or false"),
        ({**BASE, "benchmarks": "b"}, r"compare\.benchmarks: unknown field"),
        ({"benchmark": "b", "out_dir": "o"}, r"compare\.morphable_model: required"),
    ],
)
def test_bad_specs_name_the_entry_and_field(data, message):
    with pytest.raises(ConfigError, match=message):
        load_compare_spec(data)


def test_bad_spec_files(tmp_path):
    with pytest.raises(ConfigError, match=r"spec\.yaml: comparison spec not found"):
        load_compare_spec(tmp_path / "spec.yaml")
    (tmp_path / "spec.yaml").write_text("train: {}\n")
    with pytest.raises(ConfigError, match=r"spec\.yaml: expected a top-level 'compare' section"):
        load_compare_spec(tmp_path / "spec.yaml")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({"compare": {**BASE, "entries": [_entry("A", views="x")]}}))
    with pytest.raises(ConfigError, match=r"spec.yaml: compare\.entries\[0\] \('A'\)\.views: expected a list"):
        load_compare_spec(tmp_path / "spec.yaml")


def test_entry_arguments():
    entry = parse_entry_arg("DF-MVR front=runs/small/model.pt:front")
    assert entry.label == "DF-MVR front" and entry.checkpoint == Path("runs/small/model.pt")
    assert entry.views == ("front",)
    assert parse_entry_arg("A=x.pt").views == ("left", "front", "right")
    assert parse_entry_arg("A=x.pt:right,left").views == ("left", "right")
    assert parse_entry_arg("A=dir:v2/x.pt").checkpoint == Path("dir:v2/x.pt")  # not views: part of the path
    for bad in ("x.pt", "=x.pt", "A="):
        with pytest.raises(ConfigError, match=r"expected LABEL=CHECKPOINT\[:VIEWS\]"):
            parse_entry_arg(bad)
    with pytest.raises(ConfigError, match=r"--entry 'A\|B=x.pt': label"):
        parse_entry_arg("A|B=x.pt")


def test_budgets_from_checkpoint_extras():
    trainer = {
        "step": 2000,
        "epoch": 7,
        "train_config": {"batch_size": 4, "device": "auto", "data": ["out/data/train"]},
    }
    budget = budget_from_extra(trainer)
    assert (budget.steps, budget.batch_size, budget.world_size, budget.samples_seen) == (2000, 4, 1, 8000)
    assert budget.device == "auto" and budget.seconds is None and budget.data == ("out/data/train",)
    assert budget.steps_text() == "2000 × 4"
    used = budget_from_extra({**trainer, "device": "cuda:0", "world_size": 2, "train_seconds": 3720.0})
    assert used.device == "cuda:0" and used.samples_seen == 16000 and used.steps_text() == "2000 × 4 × 2 proc."
    assert (
        format_seconds(used.seconds) == "1 h 02 min" and format_seconds(45) == "45 s" and format_seconds(None) == "n/a"
    )
    explicit = budget_from_extra({**trainer, "budget": {"steps": 3000, "seconds": 1080}})  # e.g. R-Net + C-Net stages
    assert explicit.steps == 3000 and explicit.batch_size == 4 and format_seconds(explicit.seconds) == "18 min"
    junk = budget_from_extra({"step": "many", "train_config": {"batch_size": True}, "train_seconds": float("nan")})
    assert junk == TrainingBudget() and junk.samples_seen is None and junk.steps_text() == "n/a"
    assert TrainingBudget.from_dict(used.to_dict()) == used and TrainingBudget.from_dict(None) == TrainingBudget()
    assert budget_from_extra(None) == TrainingBudget()


def test_budget_statements():
    a = TrainingBudget(steps=2000, batch_size=4, data=("d",))
    b = TrainingBudget(steps=1000, batch_size=8, data=("d",))
    equal, text = budgets_statement([("A", a), ("B", b)])
    assert equal is True and "equal, 8000 training samples seen" in text and "different steps × batch" in text
    equal, text = budgets_statement([("A", a), ("C", TrainingBudget(steps=10, batch_size=4, data=("d",)))])
    assert equal is False and "NOT equal" in text and "A: 8000, C: 40" in text
    equal, text = budgets_statement([("A", a), ("D", TrainingBudget(steps=2000))])
    assert equal is None and "n/a) for D" in text
    equal, text = budgets_statement([("A", a), ("E", TrainingBudget(steps=2000, batch_size=4, data=("other",)))])
    assert equal is True and "The training data differ: A: d; E: other" in text
    assert budgets_statement([])[0] is None


def test_compare_usage_errors_exit_2(tmp_path, capsys):
    out = ["-o", str(tmp_path / "o"), "--quiet"]
    assert cli_main.main(["eval", "--compare", "--entry", "A=x.pt", *out]) == 2
    assert "--compare without a spec file: --benchmark, --model required" in capsys.readouterr().err
    argv = ["eval", "--compare", "--benchmark", "b", "--model", "m", *out]
    assert cli_main.main([*argv, "--checkpoint", "x.pt"]) == 2
    assert "--checkpoint: not used with --compare" in capsys.readouterr().err
    assert cli_main.main([*argv, "--entry", "nolabel"]) == 2
    assert "--entry 'nolabel'" in capsys.readouterr().err
    assert cli_main.main(["eval", "--compare", str(tmp_path / "absent.yaml"), *out]) == 2
    assert "absent.yaml: comparison spec not found" in capsys.readouterr().err
    assert cli_main.main(["eval", "--benchmark", "b", "--entry", "A=x.pt", *out]) == 2
    assert "--entry: only with --compare" in capsys.readouterr().err
    assert cli_main.main(["eval", "--benchmark", "b", "--model", "m", "--quiet"]) == 2
    assert "-o/--output: required" in capsys.readouterr().err
