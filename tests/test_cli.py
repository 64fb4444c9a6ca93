"""The ``vaezoo`` command line, called in-process (and once as a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from fake_dist import install_distribution

from vaezoo.cli import main

TINY = [
    "data.limit=96",
    "model.latent_dim=2",
    "model.encoder.hidden=[16]",
    "model.decoder.hidden=[16]",
    "train.epochs=2",
    "train.batch_size=32",
    "eval.num_samples=4",
    "log.num_images=8",
    "log.loggers=[jsonl]",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run shared by the eval/sample tests (a 2-d latent space: figures too)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    return out


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("vaezoo: error: ")
    assert "Traceback" not in err[0]
    return err[0]


def test_help_in_a_real_subprocess():
    out = subprocess.run([sys.executable, "-m", "vaezoo", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for command in ("train", "eval", "sample", "list", "describe", "plugins", "zoo"):
        assert command in out.stdout


@pytest.mark.parametrize("command", ["train", "eval", "sample", "list", "describe", "plugins", "zoo"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: vaezoo " + command in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage: vaezoo" in capsys.readouterr().out


def test_train_writes_a_run_and_says_where(trained, capsys):
    for name in (
        "config.yaml",
        "checkpoint.safetensors",
        "metrics.jsonl",
        "model/model.safetensors",
        "samples.png",
        "latent_scatter.png",
        "latent_manifold.png",
        "loss_curve.png",
        "eval.json",
    ):
        assert (trained / name).is_file(), name


def test_train_output_names_the_files(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", *TINY, "train.epochs=1", "model.latent_dim=3", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"run folder: {out}" in text
    for word in ("weights:", "samples:", "metrics:", str(out / "model")):
        assert word in text


def test_train_with_no_arguments_uses_the_default_recipe(monkeypatch, tmp_path):
    import vaezoo.training
    from vaezoo.config import default_config, to_container

    seen = {}
    monkeypatch.setattr(vaezoo.training, "train", lambda cfg, resume=None: seen.update(cfg=cfg, resume=resume))
    assert main(["train"]) == 0
    assert to_container(seen["cfg"]) == to_container(default_config())
    assert seen["resume"] is None


def test_recipe_file_names_the_run(monkeypatch, tmp_path):
    import vaezoo.training

    recipe = tmp_path / "tiny_recipe.yaml"
    recipe.write_text("train:\n  epochs: 3\n")
    seen = {}
    monkeypatch.setattr(vaezoo.training, "train", lambda cfg, resume=None: seen.update(cfg=cfg))
    assert main(["train", str(recipe), "train.lr=0.01"]) == 0
    assert seen["cfg"].log.name == "tiny_recipe" and seen["cfg"].train.epochs == 3 and seen["cfg"].train.lr == 0.01


def test_resume_through_the_cli(tmp_path, capsys):
    from vaezoo.training import checkpoint as ckpt

    out = tmp_path / "r"
    assert main(["train", *TINY, "train.epochs=1", "--out", str(out)]) == 0
    assert main(["train", "--resume", str(out), "train.epochs=2"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert ckpt.load(out).state["epoch"] == 2
    assert main(["train", "--resume", str(out)]) == 2
    assert "already trained all 2 epochs" in one_error_line(capsys)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "train.epoch=3"], "train.epoch: unknown key. Did you mean 'epochs'?"),
        (["train", "train.epochs=abc"], "train.epochs: expected an integer, got 'abc'"),
        (["train", "model.prior.name=vam"], "model.prior.name: unknown prior 'vam'. Did you mean 'vamp'?"),
        (["train", "missing.yaml"], "config file 'missing.yaml' not found"),
        (["train", "--resume", "/nonexistent/run"], "no such folder"),
        (["eval", "/nonexistent/run"], "does not exist"),
    ],
)
def test_user_errors_exit_2_with_one_line(args, expected, capsys):
    assert main(args) == 2
    assert expected in one_error_line(capsys)


def test_a_diverged_run_exits_1(tmp_path, capsys):
    code = main(
        [
            "train",
            *TINY,
            "train.lr=1e30",
            "train.warmup_epochs=0",
            "log.interval=1",
            "model.likelihood.name=gaussian",
            "data.binarize=none",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    assert code == 1
    assert "NaN or infinite" in one_error_line(capsys)


def test_eval_json_on_run_and_model_folders(trained, capsys):
    assert main(["eval", str(trained), "--num-samples", "3", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores) >= {"elbo", "nll", "bits_per_dim", "num_examples", "split"}
    assert scores["num_samples"] == 3 and scores["split"] == "test"
    assert main(["eval", str(trained / "model"), "-k", "2", "--split", "val", "--limit", "5", "--json"]) == 0
    val = json.loads(capsys.readouterr().out)
    assert val["split"] == "val" and val["num_examples"] == 5


def test_eval_text_and_figures(trained, tmp_path, capsys):
    assert main(["eval", str(trained), "-k", "2", "--limit", "20", "--figures", str(tmp_path / "figs")]) == 0
    out = capsys.readouterr().out
    assert "bits/dim" in out and "NLL" in out
    assert (tmp_path / "figs" / "latent_scatter.png").is_file()
    assert (tmp_path / "figs" / "latent_manifold.png").is_file()


def test_eval_figures_are_written_both_or_neither(trained, tmp_path, capsys):
    figs = tmp_path / "figs"
    (figs / "latent_manifold.png").mkdir(parents=True)  # the second figure cannot be written
    assert main(["eval", str(trained), "-k", "2", "--limit", "20", "--figures", str(figs)]) == 3
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "latent_manifold.png" in err[0], err
    assert [p.name for p in figs.iterdir()] == ["latent_manifold.png"]  # no scatter, no temporary file


def test_sample(trained, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from vaezoo.figures import MIN_PIXELS, PADDING

    target = tmp_path / "grid.png"
    assert main(["sample", str(trained), "--n", "4", "--out", str(target), "--seed", "1"]) == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "decoder means" in capsys.readouterr().out
    mean = tmp_path / "m.png"
    assert main(["sample", str(trained / "model"), "--n", "4", "--out", str(mean), "--mean", "--seed", "1"]) == 0
    assert mean.read_bytes() == target.read_bytes()  # the means are the default
    draw = tmp_path / "d.png"
    assert main(["sample", str(trained), "--n", "4", "--out", str(draw), "--draw", "--seed", "1"]) == 0
    assert "samples x ~ p(x|z)" in capsys.readouterr().out
    means, draws = (np.asarray(Image.open(p).convert("L")) for p in (target, draw))
    assert means.shape == draws.shape == (2 * MIN_PIXELS + 3 * PADDING,) * 2  # 8x8 digits shown 64 px wide
    assert set(np.unique(draws)) <= {0, 128, 255}  # Bernoulli draws (and the grey padding)
    assert len(set(np.unique(means)) - {0, 128, 255}) > 10  # means: shades of grey
    with pytest.raises(SystemExit) as info:
        main(["sample", str(trained), "--out", str(tmp_path / "b.png"), "--mean", "--draw"])
    assert info.value.code == 2 and "not allowed with argument" in one_error_line(capsys)
    assert main(["sample", str(trained), "--out", str(tmp_path / "x.jpg")]) == 2
    assert "--out" in one_error_line(capsys)


def test_eval_of_an_unfinished_run_explains(tmp_path, capsys):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("train:\n  epochs: 1\n")
    assert main(["eval", str(run_dir)]) == 2
    assert "--resume" in one_error_line(capsys)


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("encoders:", "mlp", "priors:", "vamp", "likelihoods:", "bernoulli"):
        assert word in out
    assert main(["list", "prior", "--json"]) == 0
    assert "normal" in json.loads(capsys.readouterr().out)["prior"]
    with pytest.raises(SystemExit):
        main(["list", "pretrained"])  # not a component kind: see `vaezoo zoo list`


def test_plugins_reports_a_broken_plugin_and_keeps_working(tmp_path, monkeypatch, capsys):
    install_distribution(
        tmp_path / "broken",
        monkeypatch,
        dist="vaezoo-broken",
        version="0.0.1",
        entry_points={"broken": "broken_plugin"},
        modules={"broken_plugin": "raise RuntimeError('boom at import')\n"},
    )
    monkeypatch.setenv("VAEZOO_PLUGINS", "broken")
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "vaezoo  [vaezoo" in out and "(built-in)" in out
    assert "broken  [vaezoo-broken 0.0.1]  ERROR" in out and "boom at import" in out
    from vaezoo.registry import reset_registry

    reset_registry()
    assert main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    broken = next(p for p in data["plugins"] if p["name"] == "broken")
    assert broken["distribution"] == "vaezoo-broken" and broken["version"] == "0.0.1"
    assert "boom at import" in broken["errors"][0]
    assert any("boom at import" in w for w in data["warnings"])
    builtin = next(p for p in data["plugins"] if p["name"] == "vaezoo")
    assert "prior:normal" in builtin["registered"]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["model.likelihood.name=gaussian", "model.likelihood.scale=0", "data.binarize=none"],
            "model.likelihood: gaussian: scale",
        ),
        (
            ["model.likelihood.name=discretized_logistic", "model.likelihood.bits=20", "data.binarize=none"],
            "model.likelihood: discretized_logistic: bits",
        ),
        (["model.encoder.latent_dim=3"], "model.encoder.latent_dim: set by the model itself"),
    ],
)
def test_a_component_refusing_its_parameters_is_one_line_and_writes_nothing(tmp_path, capsys, overrides, expected):
    out = tmp_path / "r"
    assert main(["train", *TINY, *overrides, "--out", str(out)]) == 2
    assert expected in one_error_line(capsys)
    assert not out.exists()


def test_plugins_shows_every_error_even_in_strict_mode(tmp_path, monkeypatch, capsys):
    for name in ("broken_one", "broken_two"):
        install_distribution(
            tmp_path / name,
            monkeypatch,
            dist=f"vaezoo-{name}",
            version="0.0.1",
            entry_points={name: f"{name}_plugin"},
            modules={f"{name}_plugin": f"raise RuntimeError('{name} fails at import')\n"},
        )
    monkeypatch.setenv("VAEZOO_PLUGINS", "broken_one,broken_two")
    monkeypatch.setenv("VAEZOO_STRICT_PLUGINS", "1")
    assert main(["list"]) == 2  # strict mode: other commands stop at the first problem
    assert "broken_one fails at import" in one_error_line(capsys)
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "broken_one  [vaezoo-broken_one 0.0.1]  ERROR" in out and "broken_one fails at import" in out
    assert "broken_two  [vaezoo-broken_two 0.0.1]  ERROR" in out and "broken_two fails at import" in out
    assert "VAEZOO_STRICT_PLUGINS is set" in out
    assert main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    errors = {p["name"]: p["errors"] for p in data["plugins"]}
    assert "broken_one fails at import" in errors["broken_one"][0]
    assert "broken_two fails at import" in errors["broken_two"][0]
    assert data["strict"] is True
    import os

    assert os.environ["VAEZOO_STRICT_PLUGINS"] == "1"  # restored after discovery


def test_plugin_warnings_are_one_line(trained, tmp_path, monkeypatch, capsys):
    install_distribution(
        tmp_path / "broken",
        monkeypatch,
        dist="vaezoo-broken",
        version="0.0.1",
        entry_points={"broken": "broken_plugin"},
        modules={"broken_plugin": "raise RuntimeError('boom at import')\n"},
    )
    monkeypatch.setenv("VAEZOO_PLUGINS", "broken")
    assert main(["sample", str(trained), "--n", "4", "--out", str(tmp_path / "s.png")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("vaezoo: warning: vaezoo plugin 'broken'") and "boom at import" in err[0]


def test_data_warnings_during_training_are_one_line(tmp_path, capsys):
    overrides = ["train.epochs=1", "model.likelihood.name=discretized_logistic", "model.likelihood.bits=5"]
    assert main(["train", *TINY, *overrides, "data.binarize=none", "--out", str(tmp_path / "r")]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [
        "vaezoo: warning: data.bits=8 but the likelihood DiscretizedLogistic discretizes to 5 bits; "
        "quantizing the data to 5 bits"
    ]


def test_eval_data_options(trained, tmp_path, capsys):
    import vaezoo

    bare = tmp_path / "bare"  # a model folder that does not record its data
    vaezoo.from_pretrained(trained / "model").save_pretrained(str(bare))
    assert main(["eval", str(bare), "-k", "2"]) == 2
    assert "pass --data NAME" in one_error_line(capsys)
    assert main(["eval", str(bare), "-k", "2", "--data", "digits", "--binarize", "static", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["num_examples"] == 359 and scores["split"] == "test"
    assert main(["eval", str(bare), "-k", "2", "--data", "digits", "--json"]) == 0  # binarized for its Bernoulli
    assert json.loads(capsys.readouterr().out) == scores  # the same fixed binarization of the test set
    assert main(["eval", str(bare), "-k", "2", "--data", "digits", "--binarize", "none"]) == 2  # grey digits
    assert "binar" in one_error_line(capsys)
    missing = tmp_path / "no-mnist-here"
    assert main(["eval", str(trained), "--data", "mnist", "--data-root", str(missing)]) == 2
    assert str(missing) in one_error_line(capsys)


@pytest.mark.parametrize(
    ("device", "expected"),
    [("gpu", "--device: 'gpu' is not a device"), ("cuda", "CUDA is not available"), ("cuda:3", "CUDA is not available")],
)
def test_device_is_checked_before_loading(trained, tmp_path, monkeypatch, capsys, device, expected):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["sample", str(trained), "--out", str(tmp_path / "s.png"), "--device", device]) == 2
    assert expected in one_error_line(capsys)
    assert main(["eval", str(trained), "-k", "1", "--device", device]) == 2
    assert expected in one_error_line(capsys)
    assert main(["sample", str(trained), "--n", "2", "--out", str(tmp_path / "a.png"), "--device", "auto"]) == 0


def test_docs_list_every_option_of_every_command():
    from pathlib import Path

    from vaezoo.cli import build_parser

    docs = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    synopsis = docs.split("```", 2)[1]
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    missing = []
    for command in ("train", "eval", "compare", "sample", "list", "describe", "plugins"):
        for action in sub.choices[command]._actions:
            longs = [o for o in action.option_strings if o.startswith("--") and o != "--help"]
            if longs and not any(f"vaezoo {command}" in line and longs[0] in line for line in _synopsis_entries(synopsis)):
                missing.append(f"{command} {longs[0]}")
    assert not missing, f"not in the synopsis of docs/cli.md: {missing}"


def _synopsis_entries(synopsis: str) -> list[str]:
    """The synopsis with continuation lines (indented) joined to their command."""
    entries: list[str] = []
    for line in synopsis.splitlines():
        if line.startswith(" ") and entries:
            entries[-1] += line
        elif line.strip():
            entries.append(line)
    return entries
