"""The VampPrior in conditional models: pseudo-conditions for p(z), and the class-wise p(z|y).

Every density is checked against a float64 reference written from the definition (the
encoder called on one pseudo-input and its condition at a time, torch.distributions.Normal,
an explicit weighted log-sum-exp), and one against an exact answer (it integrates to 1).
"""

from __future__ import annotations

import math
import types

import pytest
import torch
from torch.distributions import Normal

import vaezoo
from vaezoo.components import Prior
from vaezoo.errors import ConfigError, DataError
from vaezoo.model import build_model
from vaezoo.serialization import load_folder, save_pretrained
from vaezoo.testing import isolated_registry

VAE = {"data_shape": [1, 4, 4], "latent_dim": 2, "encoder": {"name": "mlp", "hidden": [8]},
       "decoder": {"name": "mlp", "hidden": [8]}, "likelihood": "bernoulli"}
HIER = {"architecture": "hierarchical", "data_shape": [1, 4, 4], "latent_dims": [3, 2], "hidden": [8],
        "likelihood": "bernoulli"}
CONV = {**HIER, "blocks": "conv", "latent_dims": [2, 2], "channels": [4, 4]}
ARCHS = {"vae": VAE, "hierarchical": HIER, "conv-hierarchical": CONV}


def model_of(arch, condition, components=7, **changes):
    torch.manual_seed(0)
    cfg = {**ARCHS[arch], "prior": {"name": "vamp", "components": components}, "condition": condition, **changes}
    model = build_model(cfg).double().eval()
    with torch.no_grad():  # pseudo-inputs and nets away from their initial symmetry
        model.prior.raw_pseudo_inputs.uniform_(0, 1)
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def binary(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 4, 4, generator=g) > 0.5).double()


def encoder_of(model):
    return model._top_posterior if hasattr(model, "_top_posterior") else model.encoder


def component_log_probs(model, v, z):
    """log q(z | u_k, v_k) for every k, one encoder call per pseudo-input: ``(..., K)``."""
    enc, u = encoder_of(model), model.prior.pseudo_inputs
    out = []
    for k in range(len(u)):
        q = enc(u[k : k + 1], v[k : k + 1])
        loc, scale = q.base_dist.loc[0], q.base_dist.scale[0]
        out.append(Normal(loc, scale).log_prob(z).sum(-1))
    return torch.stack(out, -1)


def class_wise_reference(model, y, z):
    """log p(z|y) = log sum_k (y_{c_k} / n_{c_k}) q(z | u_k, onehot(c_k)), c_k = k mod classes."""
    k, classes = model.prior.components, y.shape[-1]
    c = torch.arange(k) % classes
    v = torch.nn.functional.one_hot(c, classes).double()
    n = torch.bincount(c, minlength=classes).double()
    weights = y[:, c] / n[c]  # (B, K)
    return torch.logsumexp(weights.log() + component_log_probs(model, v, z), -1)


# -- p(z|y): the class-wise VampPrior ---------------------------------------------------------
@pytest.mark.parametrize("arch", list(ARCHS))
def test_class_wise_density_against_float64_reference(arch):
    """7 components over 3 classes (3, 2, 2 each): one-hot and soft label rows, z with sample dims."""
    model = model_of(arch, {"classes": 3, "prior": True})
    y = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [0.2, 0.5, 0.3]], dtype=torch.float64)
    z = torch.randn(5, 4, model.prior.latent_dim, dtype=torch.float64)
    got = model.prior.log_prob(z, y)
    assert got.shape == (5, 4)
    torch.testing.assert_close(got, class_wise_reference(model, y, z), rtol=0, atol=1e-10)
    if arch == "vae":  # and through the model, labels as integers
        torch.testing.assert_close(model.prior_log_prob(z[:, :3], torch.tensor([0, 1, 2])), got[:, :3], rtol=0, atol=0)


def test_class_wise_density_integrates_to_one_for_each_label():
    model = model_of("vae", {"classes": 3, "prior": True}, latent_dim=1)
    grid = torch.linspace(-40, 40, 400_001, dtype=torch.float64)
    for y in (torch.eye(3, dtype=torch.float64), torch.tensor([[0.6, 0.0, 0.4]], dtype=torch.float64)):
        p = model.prior.log_prob(grid[:, None, None].expand(-1, len(y), 1), y).exp()
        torch.testing.assert_close(torch.trapezoid(p, grid, dim=0), torch.ones(len(y), dtype=torch.float64), rtol=0, atol=1e-8)


def test_one_hot_labels_use_only_their_class_and_samples_have_the_mixture_mean():
    model = model_of("vae", {"classes": 3, "prior": True})
    d = model.prior.distribution(torch.eye(3, dtype=torch.float64))
    probs = d.mixture_distribution.probs  # (3, 7): class c's components are k = c, c + 3, ...
    want = torch.tensor([[1 / 3, 0, 0, 1 / 3, 0, 0, 1 / 3], [0, 0.5, 0, 0, 0.5, 0, 0], [0, 0, 0.5, 0, 0, 0.5, 0]],
                        dtype=torch.float64)
    torch.testing.assert_close(probs, want, rtol=0, atol=1e-15)
    torch.manual_seed(1)
    n = 40_000
    draws = model.prior.sample(n, torch.eye(3, dtype=torch.float64)[[1]].expand(n, 3))
    assert draws.shape == (n, 2)
    mean = d.mean[1]  # sum_k w_k loc_k
    se = draws.std(0) / math.sqrt(n)
    assert ((draws.mean(0) - mean).abs() < 4 * se).all()
    torch.manual_seed(1)
    assert model.sample(3, y=2).shape == (3, 1, 4, 4)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_class_wise_models_train_save_and_load(arch, tmp_path):
    model = model_of(arch, {"classes": 3, "prior": True}).float().train()
    data = torch.utils.data.TensorDataset(binary(24).float(), torch.arange(24) % 3)
    before = model.prior.raw_pseudo_inputs.detach().clone()
    result = vaezoo.fit(model, data, epochs=2, batch_size=8, verbose=False)
    assert math.isfinite(result.history[-1]["train/elbo"])
    assert not torch.equal(before, model.prior.raw_pseudo_inputs)  # the prior's own parameters learn
    save_pretrained(model, tmp_path / "m")
    loaded = load_folder(tmp_path / "m").eval()
    x, y = binary(4).float(), torch.tensor([0, 1, 2, 0])
    torch.manual_seed(3)
    a = model.eval().log_likelihood(x, 5, y=y)
    torch.manual_seed(3)
    torch.testing.assert_close(loaded.log_likelihood(x, 5, y=y), a, rtol=0, atol=0)


# -- p(z) of a conditional model: pseudo-conditions --------------------------------------------
@pytest.mark.parametrize("arch", list(ARCHS))
def test_label_models_mix_pseudo_inputs_with_their_classes_in_turn(arch):
    model = model_of(arch, {"classes": 3})
    v = model.prior.pseudo_conditions
    torch.testing.assert_close(v, torch.nn.functional.one_hot(torch.arange(7) % 3, 3).double(), rtol=0, atol=0)
    assert not any("pseudo_conditions" in key for key in model.state_dict())  # fixed, not stored
    z = torch.randn(6, model.prior.latent_dim, dtype=torch.float64)
    want = torch.logsumexp(component_log_probs(model, v, z), -1) - math.log(7)
    torch.testing.assert_close(model.prior.log_prob(z), want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("arch", ["vae", "hierarchical"])
def test_covariate_models_learn_their_pseudo_covariates(arch):
    model = model_of(arch, {"dim": 2})
    v = model.prior.pseudo_conditions
    assert v.shape == (7, 2) and v.requires_grad
    assert "prior.raw_pseudo_conditions" in model.state_dict()
    z = torch.randn(6, model.prior.latent_dim, dtype=torch.float64)
    want = torch.logsumexp(component_log_probs(model, v.detach(), z), -1) - math.log(7)
    torch.testing.assert_close(model.prior.log_prob(z), want, rtol=0, atol=1e-10)
    loss = -model.elbo(binary(4), y=torch.randn(4, 2, dtype=torch.float64))["elbo"].mean()
    loss.backward()
    assert model.prior.raw_pseudo_conditions.grad.abs().sum() > 0
    x, cov = binary(7), torch.randn(7, 2, dtype=torch.float64)
    model.prior.init_from_data(x, cov)
    torch.testing.assert_close(model.prior.pseudo_conditions, cov, rtol=0, atol=0)
    torch.testing.assert_close(model.prior.pseudo_inputs, x, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"expected y of shape \(7, 2\)"):
        model.prior.init_from_data(x, cov[:3])
    with pytest.raises(ValueError, match="only a covariate-conditional model"):
        model_of(arch, {"classes": 3}).prior.init_from_data(x, cov)


# -- what cannot be done says so in one line -----------------------------------------------------
@pytest.mark.parametrize(
    "condition, components, words",
    [
        ({"dim": 2, "prior": True}, 7, "vamp gives p(z|y) only for labels"),
        ({"classes": 3, "prior": True}, 2, "at least one pseudo-input per class, got 2 for 3 classes"),
    ],
)
@pytest.mark.parametrize("arch", ["vae", "hierarchical"])
def test_what_the_vamp_prior_cannot_condition_on_is_one_line(arch, condition, components, words):
    with pytest.raises(ConfigError) as info:
        model_of(arch, condition, components=components)
    assert words in str(info.value) and "\n" not in str(info.value) and str(info.value).startswith("model.prior")


def test_label_rows_must_be_weights():
    model = model_of("vae", {"classes": 3, "prior": True})
    z = torch.zeros(1, 2, dtype=torch.float64)
    with pytest.raises(DataError, match="negative entry"):
        model.prior.log_prob(z, torch.tensor([[1.2, -0.2, 0.0]], dtype=torch.float64))
    with pytest.raises(DataError, match=r"shape \(B, 3\)"):
        model.prior.log_prob(z)
    with pytest.raises(DataError, match="built without condition_dim"):
        model_of("vae", {"classes": 3}).prior.log_prob(z, torch.eye(3, dtype=torch.float64)[:1])


def test_a_prior_that_evaluates_the_encoder_without_a_condition_parameter_is_refused():
    class OldBind(Prior):
        evaluates_encoder = True

        def bind(self, encoder, data_shape):
            self.seen = encoder

        def distribution(self):
            raise NotImplementedError

    plugin = types.SimpleNamespace(vaezoo_register_priors=vaezoo.hookimpl(lambda register: register("oldbind", OldBind)))
    with isolated_registry(("thirdparty", plugin)):
        with pytest.raises(ConfigError) as info:
            build_model({**VAE, "prior": "oldbind", "condition": {"classes": 3}})
        assert "bind() takes no condition" in str(info.value) and "\n" not in str(info.value)
        assert build_model({**VAE, "prior": "oldbind"}).prior.seen is not None  # unconditional: bound as before


def test_class_wise_mixture_of_categorical_posteriors():
    """Latents of another family (one-hot groups): the mixture is torch's, with the same weights."""
    model = model_of("vae", {"classes": 3, "prior": True}, latent_dim=8,
                     encoder={"name": "categorical", "categories": 4, "hidden": [8]},
                     decoder={"name": "mlp", "hidden": [8]})
    q = model.encoder(model.prior.pseudo_inputs, model.prior.pseudo_conditions)  # batch (7,)
    y = torch.eye(3, dtype=torch.float64)[[0, 2]]
    z = model.encode(binary(2), torch.tensor([0, 2])).sample()  # (2, 8): one-hot groups
    c = torch.arange(7) % 3
    weights = y[:, c] / torch.bincount(c).double()[c]
    want = torch.logsumexp(weights.log() + q.log_prob(z[:, None, :]), -1)
    torch.testing.assert_close(model.prior.log_prob(z, y), want, rtol=0, atol=1e-10)
    assert model.prior.sample(2, y).shape == (2, 8)
