"""``vaezoo compare``: the paired differences are those of the one measurement, a model against
its own copy differs by exactly zero, and models that cannot be ranked together are refused
in one line."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

import vaezoo
from vaezoo.cli import main
from vaezoo.comparison import compare, load_models_and_data
from vaezoo.errors import ConfigError
from vaezoo.measurement import measure

pytestmark = pytest.mark.usefixtures("one_thread")

BINARY = "data:\n  name: digits\n  binarize: dynamic\n"


def run_folder(root, name, seed, likelihood="bernoulli", data=BINARY, **extra):
    torch.manual_seed(seed)
    config = {"data_shape": [1, 8, 8], "latent_dim": 2, "encoder": {"name": "mlp", "hidden": [16]},
              "decoder": {"name": "mlp", "hidden": [16]}, "prior": "normal", "likelihood": likelihood, **extra}
    model = vaezoo.build_model(config)
    run = root / name
    model.save_pretrained(str(run / "model"))
    (run / "config.yaml").write_text(data)
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    return {"a": run_folder(root, "a", 0), "b": run_folder(root, "b", 1), "root": root}


def test_paired_differences_are_those_of_the_measurement(runs):
    models, x, y, num_bins, unit = load_models_and_data([str(runs["a"]), str(runs["b"])], limit=100)
    assert len(x) == 100 and y is not None and "mass" in unit
    result = compare(models, x, num_samples=8, seed=3, batch_size=32, num_bins=num_bins)
    per = [measure(m, x, num_samples=8, seed=3, batch_size=32)["nll_per_example"] for _, m in models]
    d = per[1] - per[0]
    a, b = result["models"]
    assert a["name"] == result["reference"] == str(runs["a"]) and "difference" not in a
    assert a["nll"] == pytest.approx(float(per[0].mean()), abs=1e-9)
    assert b["difference"] == pytest.approx(float(d.mean()), abs=1e-9) == pytest.approx(b["nll"] - a["nll"], abs=1e-9)
    assert b["difference_se"] == pytest.approx(float(d.std()) / math.sqrt(100), rel=1e-9)
    assert b["difference_se"] > 0


def test_a_model_against_its_own_copy_differs_by_exactly_zero(runs, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(runs["a"], copy)
    models, x, y, num_bins, _ = load_models_and_data([str(runs["a"]), str(copy)])
    b = compare(models, x, num_samples=4, num_bins=num_bins)["models"][1]
    assert b["difference"] == 0.0 and b["difference_se"] == 0.0


def test_command_line_table_and_json(runs, capsys):
    assert main(["compare", str(runs["a"]), str(runs["b"]), "-k", "4", "--limit", "50"]) == 0
    out = capsys.readouterr().out
    assert "(reference)" in out and "the same examples for every model" in out and "50 examples" in out and "K=4" in out
    assert main(["compare", str(runs["a"]), str(runs["b"]), "-k", "4", "--limit", "50", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["num_examples"] == 50 and [r["name"] for r in result["models"]] == [str(runs["a"]), str(runs["b"])]
    assert isinstance(result["models"][1]["difference"], float)


@pytest.mark.parametrize("case,words", [
    ("density", "a density is never ranked against a mass"),
    ("other count", "is measured on 72 val examples"),
    ("other values", "other values; data settings differ (data.seed: 0 vs 5)"),
    ("conditional", "is conditional (its NLL is -log p(x|y))"),
    ("twice", "is given twice"),
    ("one", "at least two models"),
    ("bad k", "--num-samples: must be >= 1"),
])
def test_what_cannot_be_ranked_together_is_refused_in_one_line(runs, case, words, capsys):
    root, a = runs["root"], str(runs["a"])
    other = {
        "density": lambda: [a, str(run_folder(root / "x", "gauss", 0, likelihood="gaussian", data="data:\n  name: digits\n"))],
        "other count": lambda: [a, str(run_folder(root / "y", "val", 0, data=BINARY + "  val_fraction: 0.05\n")), "--split", "val"],
        "other values": lambda: [a, str(run_folder(root / "w", "seed", 0, data=BINARY + "  seed: 5\n")), "--split", "val"],
        "conditional": lambda: [a, str(run_folder(root / "z", "cvae", 0, condition={"classes": 10}))],
        "twice": lambda: [a, a],
        "one": lambda: [a],
        "bad k": lambda: [a, str(runs["b"]), "-k", "0"],
    }[case]()
    assert main(["compare", *other]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err and "Traceback" not in err, err
    if case != "bad k":
        with pytest.raises(ConfigError):
            models = [m for m in other if not m.startswith("-") and m != "val"]
            load_models_and_data(models, split="val" if "--split" in other else "test")


def test_data_options_measure_every_model_on_the_named_data(runs, tmp_path, capsys):
    bare = tmp_path / "bare"  # b's model folder alone: it records no data
    shutil.copytree(runs["b"] / "model", bare)
    a, b = str(runs["a"]), str(runs["b"])
    assert main(["compare", a, str(bare), "-k", "4", "--limit", "30"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot tell which data" in err and "\n" not in err, err
    assert main(["compare", a, str(bare), "-k", "4", "--limit", "30", "--data", "digits", "--binarize", "dynamic",
                 "--json"]) == 0
    named = json.loads(capsys.readouterr().out)
    assert main(["compare", a, b, "-k", "4", "--limit", "30", "--json"]) == 0
    recorded = json.loads(capsys.readouterr().out)
    assert named["models"][1]["difference"] == recorded["models"][1]["difference"] != 0.0
    assert "digits, test split, 30 examples" in named["unit"]
