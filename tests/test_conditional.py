"""Conditional VAEs (``model.condition``): the mechanism, its errors, exact pieces and a trained model.

The trained-model test is the proof that conditioning works: a digits CVAE's class-conditional
samples are recognised as their class by a classifier trained on the real digits.
"""

from __future__ import annotations

import math
import types

import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

import vaezoo
from vaezoo.architectures import vae as vae_module
from vaezoo.cli import main
from vaezoo.components import Encoder, Objective
from vaezoo.conditioning import Condition, parse_condition
from vaezoo.errors import ConfigError, DataError
from vaezoo.model import build_model, build_objective
from vaezoo.testing import isolated_registry

BASE = {
    "data_shape": [1, 8, 8],
    "latent_dim": 2,
    "encoder": {"name": "mlp", "hidden": [16]},
    "decoder": {"name": "mlp", "hidden": [16]},
    "prior": "normal",
    "likelihood": "bernoulli",
}


def cvae(**changes):
    torch.manual_seed(0)
    return build_model({**BASE, "condition": {"classes": 3}, **changes})


def binary(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 8, 8, generator=g) > 0.5).float()


# -- the config -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, words",
    [
        ({"classes": 10, "dim": 3}, "exactly one of classes"),
        ({}, "exactly one of classes"),
        ({"clases": 10}, "Did you mean 'classes'"),
        ({"classes": 1}, "1 class conditions on nothing"),
        ({"classes": 0}, "positive integer"),
        ({"dim": 2.5}, "positive integer"),
        ({"classes": 3, "prior": "yes"}, "true or false"),
        ("ten", "expected {classes: N}"),
    ],
)
def test_bad_condition_is_one_line(value, words):
    with pytest.raises(ConfigError) as info:
        parse_condition(value)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_labels_become_one_hot_and_bad_labels_are_refused():
    c = Condition(classes=4)
    assert torch.equal(c.vector(torch.tensor([0, 3, 1])), torch.eye(4)[[0, 3, 1]])
    assert torch.equal(c.vector(2, 3), torch.eye(4)[[2, 2, 2]])
    assert torch.equal(c.vector(torch.eye(4)[[1, 2]]), torch.eye(4)[[1, 2]])  # already one-hot
    for bad, words in [(torch.tensor([0, 4]), "label 4 is outside 0..3"), (torch.tensor([-1]), "label -1"),
                       (torch.tensor([0.5]), "non-integer"), (None, "give y")]:
        with pytest.raises(DataError, match=words):
            c.vector(bad)
    cov = Condition(dim=2)
    assert cov.vector(torch.tensor([1.0, 2.0]), 3).shape == (3, 2)
    with pytest.raises(DataError, match=r"\(batch, 2\)"):
        cov.vector(torch.zeros(3, 5))


def test_a_net_without_condition_dim_is_refused_naming_those_that_can():
    class Plain(Encoder):  # a third-party encoder that knows nothing of y
        def __init__(self, data_shape, latent_dim):
            super().__init__(data_shape, latent_dim)
            self.lin = torch.nn.Linear(math.prod(data_shape), 2 * latent_dim)

        def forward(self, x):
            loc, raw = self.lin(x.flatten(1)).chunk(2, -1)
            return Independent(Normal(loc, torch.nn.functional.softplus(raw) + 1e-3), 1)

    plugin = types.SimpleNamespace(vaezoo_register_encoders=vaezoo.hookimpl(lambda register: register("plain", Plain)))
    with isolated_registry(("thirdparty", plugin)):
        with pytest.raises(ConfigError) as info:
            cvae(encoder="plain")
        msg = str(info.value)
        assert msg.startswith("model.encoder: encoder 'plain' cannot be") and "condition_dim" in msg
        assert "'conv'" in msg and "'mlp'" in msg and "\n" not in msg
        build_model({**BASE, "encoder": "plain"})  # unconditional: fine


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"prior": {"name": "mixture", "components": 3}, "condition": {"classes": 3, "prior": True}}, "prior 'mixture' cannot be"),
        ({"encoder": {"name": "mlp", "hidden": [16], "condition_dim": 3}}, "condition_dim: set by vaezoo"),
    ],
)
def test_components_that_cannot_take_y_are_refused(changes, words):
    with pytest.raises(ConfigError, match=words):
        cvae(**changes)


def test_an_objective_without_y_cannot_train_a_conditional_model():
    class NoY(Objective):
        def forward(self, model, x, **schedule):
            out = model.elbo(x)
            return out["loss"].mean(), out

    plugin = types.SimpleNamespace(vaezoo_register_objectives=vaezoo.hookimpl(lambda register: register("noy", NoY)))
    with isolated_registry(("thirdparty", plugin)):
        model = cvae()
        with pytest.raises(ConfigError, match="'noy' cannot train a conditional model.*takes no y"):
            build_objective("noy", model)
        for name in ("elbo", "iwae", "mmd", "beta_tc"):
            build_objective(name, model)
        with pytest.raises(ConfigError, match="does not depend on y"):
            build_objective("mmd", cvae(condition={"classes": 3, "prior": True}))


# -- the model ----------------------------------------------------------------------------------
def test_y_reaches_the_encoder_and_decoder_and_is_required():
    model = cvae().eval()
    x = binary(4)
    y0, y1 = torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long)
    assert not torch.allclose(model.encode(x, y0).mean, model.encode(x, y1).mean)
    z = torch.zeros(4, 2)
    assert not torch.allclose(model.decode(z, y0), model.decode(z, y1))
    with pytest.raises(DataError, match="give y"):
        model.elbo(x)
    with pytest.raises(DataError, match="not conditional"):
        build_model(BASE).elbo(x, y=y0)


def test_log_likelihood_is_the_log_weight_of_the_same_draw_with_each_rows_y(monkeypatch):
    """K=1: log_likelihood is log p(x|z,y) + log p(z|y) - log q(z|x,y) of its one draw, exactly, also when the
    decoder runs over pieces of rows (so each piece must carry its own rows' y)."""
    model = cvae(condition={"classes": 3, "prior": True}).double().eval()
    with torch.no_grad():
        for p in model.prior.parameters():
            p.normal_(0, 0.5)  # a prior that really depends on y
    x, y = binary(7).double(), torch.tensor([0, 1, 2, 0, 1, 2, 2])
    torch.manual_seed(3)
    got = model.log_likelihood(x, 1, y=y)
    monkeypatch.setattr(vae_module, "EVAL_PIECE_ELEMENTS", 2 * 64)  # pieces of 2 rows
    torch.manual_seed(3)
    pieces = model.log_likelihood(x, 1, y=y)
    torch.manual_seed(3)
    with torch.no_grad():
        yv = torch.eye(3, dtype=torch.float64)[y]
        q = model.encoder(x, yv)
        z = q.sample((1,))
        logits = model.decoder(z, yv)
        log_px_z = (x * torch.nn.functional.logsigmoid(logits) + (1 - x) * torch.nn.functional.logsigmoid(-logits)).sum((-1, -2, -3))
        loc, log_scale = model.prior.conditional(yv).chunk(2, -1)
        log_pz = Normal(loc, log_scale.exp()).log_prob(z).sum(-1)
        want = (log_px_z + log_pz - q.log_prob(z))[0]
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
    torch.testing.assert_close(pieces, want, rtol=0, atol=1e-10)


def test_conditional_prior_density_and_analytic_kl_against_float64_references():
    model = cvae(condition={"classes": 3, "prior": True}).double()
    with torch.no_grad():
        model.prior.conditional.weight.normal_()
        model.prior.conditional.bias.normal_()
    yv = torch.eye(3, dtype=torch.float64)[[2, 0]]
    p = model.prior.distribution(yv)
    w, b = model.prior.conditional.weight, model.prior.conditional.bias
    out = yv @ w.T + b
    loc, scale = out[:, :2], out[:, 2:].exp()
    z = torch.randn(5, 2, 2, dtype=torch.float64)
    ref = (-0.5 * ((z - loc) / scale) ** 2 - scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
    torch.testing.assert_close(p.log_prob(z), ref, rtol=0, atol=1e-12)
    mq, sq = torch.randn(2, 2, dtype=torch.float64), torch.rand(2, 2, dtype=torch.float64) + 0.5
    q = Independent(Normal(mq, sq), 1)
    exact = (torch.log(scale / sq) + (sq**2 + (mq - loc) ** 2) / (2 * scale**2) - 0.5).sum(-1)
    torch.testing.assert_close(kl_divergence(q, p), exact, rtol=0, atol=1e-12)
    assert model.prior.sample(2, yv).shape == (2, 2)


HIER = {"architecture": "hierarchical", "data_shape": [1, 8, 8], "latent_dims": [4, 2], "hidden": [16],
        "prior": "normal", "likelihood": "bernoulli"}


CONV_HIER = {**HIER, "blocks": "conv", "latent_dims": [2, 2], "channels": [4, 4]}


@pytest.mark.parametrize("arch", ["vae", "hierarchical", "conv-hierarchical"])
@pytest.mark.parametrize("prior", [False, True])
def test_each_row_is_measured_with_its_own_y(arch, prior):
    """One call over 6 rows in pieces of one row draws exactly what six one-row calls draw: equal
    results mean each piece used its own row's y (and p(z|y))."""
    torch.manual_seed(0)
    base = {"vae": BASE, "hierarchical": HIER, "conv-hierarchical": CONV_HIER}[arch]
    cfg = {**base, "condition": {"classes": 3, "prior": prior}}
    model = build_model(cfg).double().eval()
    if prior:
        with torch.no_grad():
            for p in model.prior.parameters():
                p.normal_(0, 0.5)
    x, y = binary(6).double(), torch.tensor([2, 0, 1, 1, 0, 2])
    torch.manual_seed(5)
    together = model.log_likelihood(x, 3, y=y, batch_size=1)
    torch.manual_seed(5)
    apart = torch.cat([model.log_likelihood(x[i : i + 1], 3, y=y[i : i + 1]) for i in range(6)])
    assert torch.equal(together, apart)
    torch.manual_seed(5)
    assert not torch.equal(together, model.log_likelihood(x, 3, y=(y + 1) % 3, batch_size=1))


@pytest.mark.parametrize("cfg", [HIER, CONV_HIER], ids=["mlp-blocks", "conv-blocks"])
def test_a_conditional_hierarchy_trains_and_samples_each_class(cfg):
    torch.manual_seed(0)
    model = build_model({**cfg, "condition": {"classes": 3}})
    data = torch.utils.data.TensorDataset(binary(48), torch.arange(48) % 3)
    result = vaezoo.fit(model, data, epochs=2, batch_size=16, verbose=False)
    assert math.isfinite(result.history[-1]["train/elbo"])
    torch.manual_seed(0)
    a = model.sample(4, mean=True, y=0)
    torch.manual_seed(0)
    assert not torch.equal(a, model.sample(4, mean=True, y=2))


def test_categorical_latents_can_be_conditional():
    model = cvae(latent_dim=8, encoder={"name": "categorical", "categories": 4, "hidden": [16]},
                 prior={"name": "categorical", "categories": 4}).eval()
    x, y = binary(5), torch.tensor([0, 1, 2, 0, 1])
    a, b = model.encode(x, y).logits, model.encode(x, (y + 1) % 3).logits
    assert not torch.allclose(a, b)
    assert torch.isfinite(model.log_likelihood(x, 4, y=y)).all()
    assert model.sample(3, y=1).shape == (3, 1, 8, 8)


def test_sampling_takes_one_label_or_one_per_draw():
    model = cvae().eval()
    torch.manual_seed(0)
    a = model.sample(4, mean=True, y=2)
    torch.manual_seed(0)
    b = model.sample(4, mean=True, y=torch.tensor([2, 2, 2, 2]))
    assert torch.equal(a, b)
    with pytest.raises(DataError, match="give y"):
        model.sample(4)


# -- training, saving, the command line ------------------------------------------------------
@pytest.fixture(scope="module")
def trained_digits(tmp_path_factory):
    """The digits CVAE of configs/digits_cvae.yaml, shortened (about ten seconds)."""
    out = tmp_path_factory.mktemp("cvae") / "run"
    assert main(["train", "configs/digits_cvae.yaml", "train.epochs=60", "eval.num_samples=20", "log.loggers=[jsonl]",
                 "--out", str(out)]) == 0
    return out


def test_class_conditional_samples_are_recognised_by_a_classifier(trained_digits, capsys):
    """Samples asked for as class c are classified as c by a logistic regression trained on the real
    digits (its own accuracy on the held-out real digits is about 0.91): 0.996 when this was written, chance is 0.1."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    digits = load_digits()
    x, y = digits.data / 16.0, digits.target
    clf = LogisticRegression(max_iter=2000).fit(x[:1400], y[:1400])
    real = clf.score(x[1400:], y[1400:])
    model = vaezoo.from_pretrained(str(trained_digits / "model")).eval()
    torch.manual_seed(0)
    labels = torch.arange(10).repeat_interleave(50)
    samples = model.sample(len(labels), mean=True, y=labels).reshape(len(labels), -1).double().numpy()
    accuracy = float((clf.predict(samples) == labels.numpy()).mean())
    with capsys.disabled():
        print(f"\nclass-conditional samples recognised: {accuracy:.3f} (classifier on real test digits: {real:.3f})")
    assert real > 0.9
    assert accuracy > 0.8


def test_a_saved_conditional_model_loads_and_measures_the_same(trained_digits):
    model = vaezoo.from_pretrained(str(trained_digits / "model")).eval()
    assert model.condition == Condition(classes=10)
    again = vaezoo.from_pretrained(str(trained_digits / "model")).eval()
    x, y = binary(16), torch.arange(16) % 10
    torch.manual_seed(1)
    a = model.log_likelihood(x, 10, y=y)
    torch.manual_seed(1)
    b = again.log_likelihood(x, 10, y=y)
    assert torch.equal(a, b)
    torch.manual_seed(1)
    assert not torch.equal(a, model.log_likelihood(x, 10, y=(y + 5) % 10))  # y is used


def test_true_labels_explain_the_test_digits_better_than_wrong_ones(trained_digits):
    from vaezoo.evaluation import dataset_tensors, load_split, run_data_config

    model = vaezoo.from_pretrained(str(trained_digits / "model")).eval()
    _, test = load_split(run_data_config(str(trained_digits)), model, "test")
    x, y = dataset_tensors(test)
    torch.manual_seed(0)
    right = model.log_likelihood(x, 20, y=y).mean()
    wrong = model.log_likelihood(x, 20, y=(y + 1) % 10).mean()
    assert right > wrong + 5, (float(right), float(wrong))


def test_sample_label_from_the_command_line(trained_digits, tmp_path, capsys):
    out = tmp_path / "threes.png"
    assert main(["sample", str(trained_digits), "--label", "3", "--n", "8", "--out", str(out)]) == 0
    assert "of class 3" in capsys.readouterr().out and out.is_file()
    bad = tmp_path / "bad.png"
    assert main(["sample", str(trained_digits), "--label", "10", "--out", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["vaezoo: error: --label: 10 is not a class of this model; labels are 0..9"]
    assert not bad.exists()


def test_label_for_an_unconditional_model_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "data.limit=64", "model.latent_dim=2", "train.epochs=1", "eval.at_end=false",
                 "log.images=false", "log.loggers=[jsonl]", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["sample", str(run), "--label", "3", "--out", str(tmp_path / "s.png")]) == 2
    assert "not conditional" in capsys.readouterr().err
    assert not (tmp_path / "s.png").exists()


def test_eval_and_the_style_space_figure(trained_digits, tmp_path, capsys):
    assert main(["eval", str(trained_digits), "--num-samples", "5", "--figures", str(tmp_path), "--json"]) == 0
    import json

    scores = json.loads(capsys.readouterr().out)
    assert scores["nll"] > 0 and (tmp_path / "latent_manifold.png").is_file()
    assert (trained_digits / "latent_manifold.png").is_file() and (trained_digits / "samples.png").is_file()


def test_fit_refuses_a_conditional_model_without_labels():
    model = cvae()
    with pytest.raises(DataError, match="no labels"):
        vaezoo.fit(model, binary(32), epochs=1, verbose=False)
    data = torch.utils.data.TensorDataset(binary(32), torch.arange(32) % 3)
    result = vaezoo.fit(model, data, epochs=2, batch_size=16, verbose=False)
    assert math.isfinite(result.history[-1]["train/elbo"])


def test_covariate_conditions_train_and_generate():
    torch.manual_seed(0)
    model = build_model({**BASE, "condition": {"dim": 2, "prior": True}})
    cov = torch.randn(32, 2)
    result = vaezoo.fit(model, torch.utils.data.TensorDataset(binary(32), cov), epochs=2, batch_size=16, verbose=False)
    assert math.isfinite(result.history[-1]["train/elbo"])
    assert model.sample(3, mean=True, y=torch.tensor([0.5, -1.0])).shape == (3, 1, 8, 8)
    assert torch.isfinite(model.log_likelihood(binary(4), 3, y=cov[:4])).all()
    with pytest.raises(DataError, match=r"\(batch, 2\)"):
        model.elbo(binary(4), y=torch.zeros(4, 3))
    with pytest.raises(DataError, match="covariates have shape"):
        vaezoo.fit(model, torch.utils.data.TensorDataset(binary(8), torch.zeros(8, 3)), epochs=1, verbose=False)


def test_the_hub_card_of_a_conditional_model_shows_how_to_give_y():
    from vaezoo.hub import model_card

    card = model_card({"config": cvae().config}, repo_id="org/cvae")
    assert "model.sample(16, y=3)" in card and "--label 3" in card and "log p(x|y)" in card
    plain = model_card({"config": build_model(BASE).config}, repo_id="org/vae")
    assert "model.sample(16)" in plain and "--label" not in plain


def test_one_label_serves_a_batch_also_with_a_conditional_prior():
    model = cvae(condition={"classes": 3, "prior": True})
    x = binary(4)
    torch.manual_seed(0)
    one = model.elbo(x, y=1)["elbo"]
    torch.manual_seed(0)
    assert torch.equal(one, model.elbo(x, y=torch.ones(4, dtype=torch.long))["elbo"])


def test_condition_dim_is_never_offered_as_an_option():
    from vaezoo.errors import ComponentParamError

    with pytest.raises(ComponentParamError) as info:
        cvae(encoder={"name": "mlp", "hiden": [16]})
    assert "condition_dim" not in str(info.value) and "hidden" in str(info.value)


def test_latent_figures_of_a_covariate_model(tmp_path):
    from vaezoo.evaluation import latent_figures

    torch.manual_seed(0)
    model = build_model({**BASE, "condition": {"dim": 2}})
    paths = latent_figures(model, binary(20), torch.randn(20, 2), tmp_path)
    assert [p.name for p in paths] == ["latent_scatter.png", "latent_manifold.png"] and all(p.is_file() for p in paths)
