"""Preprocessing left unset follows the likelihood's ``wants``; the default recipe is unchanged."""

from __future__ import annotations

import torch
import yaml

import vaezoo
from vaezoo.cli import main
from vaezoo.components import Likelihood
from vaezoo.config import load_config
from vaezoo.data import BatchIterator, DataConfig, load_data
from vaezoo.data.config import WANTS, follow_likelihood, preprocessing_note
from vaezoo.likelihoods import BUILTIN_LIKELIHOODS

TINY = ["data.limit=64", "model.latent_dim=2", "model.encoder.hidden=[8]", "model.decoder.hidden=[8]",
        "train.epochs=1", "train.batch_size=32", "eval.num_samples=2", "log.images=false",
        "log.loggers=[jsonl]", "log.progress=false"]
EXPECTED = {  # likelihood -> (binarize, dequantize) for quantised data left unset
    "bernoulli": ("dynamic", False),
    "autoregressive_bernoulli": ("dynamic", False),
    "continuous_bernoulli": ("none", True),
    "gaussian": ("none", True),
    "laplace": ("none", True),
    "discretized_logistic": ("none", False),
    "discretized_logistic_mixture": ("none", False),
}


class NoOpinion(Likelihood):
    """A plugin likelihood that does not say what it wants."""


def chosen(likelihood, quantized=True, **given):
    cfg = follow_likelihood(DataConfig(**given), likelihood, quantized=quantized)
    return cfg.binarize, cfg.dequantize


def test_every_builtin_likelihood_says_what_it_wants():
    assert set(EXPECTED) == set(BUILTIN_LIKELIHOODS)
    for name in BUILTIN_LIKELIHOODS:
        likelihood = vaezoo.create("likelihood", name)
        assert likelihood.wants in WANTS, name
        assert (likelihood.wants == "continuous") == (not likelihood.discrete), name
        assert chosen(likelihood) == EXPECTED[name], name


def test_unset_follows_the_likelihood_and_set_values_are_kept():
    gaussian, bernoulli = vaezoo.create("likelihood", "gaussian"), vaezoo.create("likelihood", "bernoulli")
    assert chosen(gaussian, quantized=False) == ("none", False)  # float data are taken as they are
    assert chosen(NoOpinion()) == chosen(None) == ("none", False)  # no opinion: the data as they are
    assert chosen(gaussian, binarize="static") == ("static", False)
    assert chosen(gaussian, dequantize=False) == ("none", False)
    assert chosen(bernoulli, binarize="none") == ("none", False)
    assert chosen(bernoulli, dequantize=True) == ("none", True)  # asked to dequantize: not binarized too
    assert chosen(bernoulli, binarize="static", dequantize=False) == ("static", False)


def test_load_data_prepares_digits_for_each_likelihood():
    gaussian = load_data({"name": "digits"}, vaezoo.create("likelihood", "gaussian"))
    assert gaussian.dequantized_bins == 256 and "uniform dequantization" in gaussian.description
    assert (gaussian.test.x > 0).all() and len(gaussian.test.x.unique()) > 17  # no longer on the 17 levels
    bernoulli = load_data({"name": "digits"}, vaezoo.create("likelihood", "bernoulli"))
    assert bernoulli.train.binarize == "dynamic" and set(bernoulli.test.x.unique().tolist()) == {0.0, 1.0}
    logistic = load_data({"name": "digits"}, vaezoo.create("likelihood", "discretized_logistic"))
    assert logistic.num_bins == 256 and logistic.dequantized_bins is None and len(logistic.train.x.unique()) == 17
    plain = load_data({"name": "digits"})
    assert plain.num_bins is None and plain.dequantized_bins is None and len(plain.train.x.unique()) == 17


def test_the_default_recipe_prepares_exactly_what_it_did():
    cfg = load_config()
    assert cfg.data.binarize is None and cfg.data.dequantize is None  # unset: follow the likelihood
    assert cfg.model.likelihood.name == "bernoulli"
    bernoulli = vaezoo.create("likelihood", "bernoulli")
    now = load_data(cfg.data, bernoulli)
    before = load_data({**dict(cfg.data), "binarize": "dynamic", "dequantize": False}, bernoulli)
    assert now.description == before.description
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(now, split).x, getattr(before, split).x)
    a, b = BatchIterator(now.train, 64, seed=3), BatchIterator(before.train, 64, seed=3)
    for (xa, _), (xb, _) in zip(a, b):
        assert torch.equal(xa, xb)


def test_a_run_records_the_choice(tmp_path, capsys):
    out = tmp_path / "g"
    assert main(["train", *TINY, "model.likelihood.name=gaussian", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    assert "uniform dequantization" in captured.out
    data = yaml.safe_load((out / "config.yaml").read_text())["data"]
    assert (data["binarize"], data["dequantize"]) == ("none", True)


def test_binarizing_for_a_density_warns_once_saying_what_to_set(tmp_path, capsys):
    args = [*TINY, "model.likelihood.name=gaussian", "data.binarize=dynamic"]
    assert main(["train", *args, "--out", str(tmp_path / "b")]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("vaezoo: warning: data.binarize=dynamic: likelihood 'gaussian'")
    assert "set data.binarize=none data.dequantize=true" in err[0]
    logistic = vaezoo.create("likelihood", "discretized_logistic")
    assert "data.binarize=none" in preprocessing_note(DataConfig(binarize="static"), logistic, "discretized_logistic")
    assert preprocessing_note(DataConfig(), logistic, "discretized_logistic") is None
    assert preprocessing_note(DataConfig(binarize="dynamic"), vaezoo.create("likelihood", "bernoulli"), "b") is None


def test_bad_values_are_one_line(capsys):
    assert main(["train", "data.dequantize=maybe"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vaezoo: error: data.dequantize") and "\n" not in err
    assert main(["train", "data.binarize=sometimes"]) == 2
    err = capsys.readouterr().err.strip()
    assert "data.binarize: unknown mode 'sometimes'" in err and "null to follow the likelihood" in err
