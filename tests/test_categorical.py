"""Categorical latents (``encoder: categorical``, ``prior: categorical``): the relaxed and the discrete
distributions against float64 references, the exact KL, straight-through samples, temperature
annealing and its saving, the discrete model's exact log-likelihood, and training on digits."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import gammaln, logsumexp
from torch.distributions import RelaxedOneHotCategorical, kl_divergence

import vaezoo
from vaezoo.architectures.vae import analytic_kl_known
from vaezoo.cli import main as vaezoo_main
from vaezoo.distributions.categorical import OneHotCategoricals, RelaxedOneHotCategoricals
from vaezoo.errors import ConfigError
from vaezoo.nets.categorical import CategoricalEncoder
from vaezoo.priors.categorical import CategoricalPrior
from vaezoo.testing import check_prior
from vaezoo.training.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "digits_categorical.yaml"


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(n=2, k=3, data_shape=(1, 2, 2), **encoder):
    return {
        "data_shape": list(data_shape),
        "latent_dim": n * k,
        "encoder": {"name": "categorical", "categories": k, "hidden": [8], **encoder},
        "decoder": {"name": "mlp", "hidden": [8]},
        "prior": {"name": "categorical", "categories": k},
        "likelihood": "bernoulli",
    }


def configurations(n, k, dtype=torch.float64):
    """All K**N one-hot z, ``(K**N, N*K)``, in itertools.product order."""
    rows = []
    for choice in itertools.product(range(k), repeat=n):
        z = np.zeros((n, k))
        z[np.arange(n), choice] = 1.0
        rows.append(z.reshape(-1))
    return torch.tensor(np.array(rows), dtype=dtype)


def concrete_log_density(y, log_pi, tau):
    """float64 reference: the Gumbel-softmax density of one variable (Jang et al. 2017),
    Gamma(K) tau^(K-1) (sum_i pi_i / y_i^tau)^(-K) prod_i pi_i / y_i^(tau + 1), in logs."""
    y, pi = np.asarray(y, dtype=np.float64), np.exp(np.asarray(log_pi, dtype=np.float64))
    k = y.shape[-1]
    return (gammaln(k) + (k - 1) * np.log(tau) - k * np.log((pi / y**tau).sum(-1))
            + (np.log(pi) - (tau + 1) * np.log(y)).sum(-1))


# -- the distributions ------------------------------------------------------------------------


def test_discrete_kl_is_the_exact_sum_and_the_enumerated_one():
    torch.manual_seed(0)
    n, k, b = 2, 3, 4
    q_logits = torch.randn(b, n, k, dtype=torch.float64) * 2
    p_logits = torch.randn(n, k, dtype=torch.float64)
    kl = kl_divergence(OneHotCategoricals(q_logits), OneHotCategoricals(p_logits))
    assert kl.shape == (b,) and kl.dtype == torch.float64
    lq = q_logits.numpy() - logsumexp(q_logits.numpy(), -1, keepdims=True)
    lp = p_logits.numpy() - logsumexp(p_logits.numpy(), -1, keepdims=True)
    exact = (np.exp(lq) * (lq - lp)).sum((-1, -2))
    np.testing.assert_allclose(kl.numpy(), exact, rtol=1e-12, atol=1e-14)
    enumerated = np.zeros(b)  # over all K**N joint configurations of the N variables
    for choice in itertools.product(range(k), repeat=n):
        log_qz = sum(lq[:, i, c] for i, c in enumerate(choice))
        log_pz = sum(lp[i, c] for i, c in enumerate(choice))
        enumerated += np.exp(log_qz) * (log_qz - log_pz)
    np.testing.assert_allclose(kl.numpy(), enumerated, rtol=1e-12, atol=1e-14)
    # the relaxation is ignored: the same KL for relaxed distributions at any temperatures
    relaxed = kl_divergence(RelaxedOneHotCategoricals(q_logits, 0.3), RelaxedOneHotCategoricals(p_logits, 2.0))
    torch.testing.assert_close(relaxed, kl, rtol=0, atol=0)
    assert analytic_kl_known(RelaxedOneHotCategoricals(q_logits, 0.3), RelaxedOneHotCategoricals(p_logits, 0.3), "auto")
    with pytest.raises(ValueError, match="must agree"):
        kl_divergence(OneHotCategoricals(q_logits), OneHotCategoricals(torch.zeros(3, 2, dtype=torch.float64)))


def test_the_mass_is_normalised_and_sampled():
    torch.manual_seed(1)
    logits = torch.randn(2, 3, dtype=torch.float64)
    d = OneHotCategoricals(logits)
    support = d.enumerate_support()
    torch.testing.assert_close(support, configurations(2, 3))
    assert torch.logsumexp(d.log_prob(support), 0).abs() < 1e-12
    draws = d.sample((20000,))
    assert ((draws == 0) | (draws == 1)).all() and (draws.view(-1, 2, 3).sum(-1) == 1).all()
    freq = draws.view(-1, 2, 3).mean(0)
    assert (freq - d.probs).abs().max() < 0.02, (freq, d.probs)


def test_concrete_density_against_references_and_normalised():
    torch.manual_seed(2)
    n, k, tau = 3, 4, 0.7
    logits = torch.randn(n, k, dtype=torch.float64)
    d = RelaxedOneHotCategoricals(logits, tau)
    y = d.sample((5,))  # (5, N*K)
    got = d.log_prob(y)
    ref = concrete_log_density(y.view(5, n, k).numpy(), d.logits.numpy(), tau).sum(-1)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10)
    torch_ref = RelaxedOneHotCategorical(torch.tensor(tau, dtype=torch.float64), logits=logits).log_prob(y.view(5, n, k)).sum(-1)
    torch.testing.assert_close(got, torch_ref, rtol=1e-10, atol=1e-10)
    # K = 2: the density of (t, 1 - t) integrates to 1 over t in (0, 1)
    for tau2, lg in ((0.5, [0.3, -1.2]), (2.0, [1.5, 0.0])):
        d2 = RelaxedOneHotCategoricals(torch.tensor([lg], dtype=torch.float64), tau2)

        def pdf(u, d2=d2):  # t = sigmoid(u) on (0, 1), dt = t (1 - t) du: no endpoint singularity
            t = 1 / (1 + math.exp(-u))
            return math.exp(float(d2.log_prob(torch.tensor([t, 1 - t], dtype=torch.float64)))) * t * (1 - t)

        total, _ = integrate.quad(pdf, -60, 60, limit=400)
        assert total == pytest.approx(1.0, abs=1e-7)


def test_low_temperatures_give_one_hot_relaxed_samples():
    torch.manual_seed(3)
    logits = torch.randn(500, 2, 5)
    closeness = []
    for tau in (1.0, 0.3, 0.1, 0.01):
        y = RelaxedOneHotCategoricals(logits, tau).rsample().view(500, 2, 5)
        assert torch.allclose(y.sum(-1), torch.ones(500, 2))
        closeness.append(float(y.max(-1).values.mean()))
        lp = RelaxedOneHotCategoricals(logits, tau).log_prob(y.flatten(-2))
        assert torch.isfinite(lp).all(), tau  # the floor keeps the density of its own samples finite
    assert closeness == sorted(closeness) and closeness[-1] > 0.99, closeness


def test_straight_through_is_one_hot_with_the_relaxed_gradient():
    torch.manual_seed(4)
    logits = torch.randn(6, 3, 4, requires_grad=True)
    weights = torch.randn(6, 12)
    torch.manual_seed(5)
    hard = OneHotCategoricals(logits, 0.5).rsample()
    torch.manual_seed(5)  # the same Gumbel noise
    soft = RelaxedOneHotCategoricals(logits, 0.5).rsample()
    groups = hard.view(6, 3, 4)
    assert ((groups == 0) | (groups == 1)).all() and (groups.sum(-1) == 1).all()
    assert torch.equal(groups.argmax(-1), soft.view(6, 3, 4).argmax(-1))  # Gumbel-max: the relaxed sample's argmax
    (g_hard,) = torch.autograd.grad((weights * hard).sum(), logits)
    (g_soft,) = torch.autograd.grad((weights * soft).sum(), logits)
    assert g_hard.abs().sum() > 0
    torch.testing.assert_close(g_hard, g_soft, rtol=0, atol=0)


# -- the encoder -------------------------------------------------------------------------------


def test_temperature_anneals_by_the_formula_and_survives_saving(tmp_path):
    from safetensors.torch import load_file, save_file

    torch.manual_seed(6)
    tau0, floor, rate, every = 2.0, 0.4, 0.01, 7
    enc = CategoricalEncoder((4,), 6, categories=3, hidden=[8], temperature=tau0, min_temperature=floor,
                             anneal_rate=rate, anneal_every=every)
    x = torch.rand(5, 4)
    for step in range(200):
        expected = max(floor, tau0 * math.exp(-rate * every * (step // every)))
        assert float(enc.current_temperature()) == pytest.approx(expected, rel=1e-6)
        assert enc.temperature_at(step) == pytest.approx(expected, rel=1e-12)
        q = enc(x)
        assert float(q.temperature) == pytest.approx(expected, rel=1e-6)
        q.rsample((3,))
        q.rsample()  # a second sample of the same posterior: still one step
    assert int(enc.steps) == 200 and float(enc.current_temperature()) == pytest.approx(floor)
    enc.eval()  # evaluation never counts
    enc(x).rsample()
    enc.train()
    with torch.no_grad():
        enc(x).sample()  # neither does sample(), nor a forward without a sample
    assert int(enc.steps) == 200

    mid = CategoricalEncoder((4,), 6, categories=3, hidden=[8], temperature=tau0, min_temperature=floor,
                             anneal_rate=rate, anneal_every=every)
    for _ in range(45):
        mid(x).rsample()
    path = tmp_path / "enc.safetensors"
    save_file({k: v.contiguous() for k, v in mid.state_dict().items()}, str(path))
    fresh = CategoricalEncoder((4,), 6, categories=3, hidden=[8], temperature=tau0, min_temperature=floor,
                               anneal_rate=rate, anneal_every=every)
    assert int(fresh.steps) == 0
    fresh.load_state_dict(load_file(str(path)))
    assert int(fresh.steps) == 45
    assert torch.equal(fresh.current_temperature(), mid.current_temperature())
    for _ in range(5):  # and it goes on from there
        fresh(x).rsample()
    assert float(fresh.current_temperature()) == pytest.approx(max(floor, tau0 * math.exp(-rate * 49)), rel=1e-6)


def test_a_saved_model_keeps_its_temperature(tmp_path):
    torch.manual_seed(7)
    model = vaezoo.build_model(tiny_config(anneal_rate=0.05, anneal_every=1))
    x = torch.rand(4, 1, 2, 2).round()
    for _ in range(3):
        model.elbo(x)["loss"].mean().backward()
    assert int(model.encoder.steps) == 3
    model.save_pretrained(tmp_path / "m")
    loaded = vaezoo.from_pretrained(str(tmp_path / "m"))
    assert int(loaded.encoder.steps) == 3
    assert torch.equal(loaded.encoder.current_temperature(), model.encoder.current_temperature())


def test_encoder_modes_and_what_log_prob_means():
    torch.manual_seed(8)
    enc = CategoricalEncoder((4,), 6, categories=3, hidden=[8], temperature=0.8)
    x = torch.rand(5, 4)
    q = enc(x)
    assert type(q) is RelaxedOneHotCategoricals and q.batch_shape == (5,) and q.event_shape == (6,)
    z = q.rsample((2,))
    ref = concrete_log_density(z.detach().double().view(2, 5, 2, 3).numpy(), q.logits.detach().double().numpy(), 0.8).sum(-1)
    np.testing.assert_allclose(q.log_prob(z).detach().numpy(), ref, rtol=1e-5, atol=1e-5)  # training: the Concrete density
    for hard, training in ((True, True), (False, False)):
        enc.hard = hard
        enc.train(training)
        q = enc(x)
        assert type(q) is OneHotCategoricals
        z = q.rsample((2,))
        assert ((z == 0) | (z == 1)).all()
        mass = (z.view(2, 5, 2, 3) * q.logits).sum((-1, -2))  # the discrete log-mass
        torch.testing.assert_close(q.log_prob(z), mass)


def test_bad_configs_are_one_line_errors():
    base = tiny_config()
    cases = [
        ({**base, "latent_dim": 7}, r"model\.encoder: CategoricalEncoder: latent_dim 7 is not a multiple of categories 3"),
        ({**base, "prior": {"name": "categorical", "categories": 2}, "latent_dim": 6},
         r"model\.prior: the categorical prior has categories=2, but the encoder .* has categories=3"),
        ({**base, "prior": "normal"}, r"model\.prior: StandardNormal is a prior for 'real' latents, but the encoder "
                                      r"\(CategoricalEncoder\) gives 'categorical' latents; choose a prior for 'categorical' "
                                      r"latents \('categorical', 'vamp'\)"),
        ({**base, "prior": {"name": "mixture", "components": 2}}, r"model\.prior: GaussianMixture is a prior for 'real'"),
        ({**base, "encoder": {"name": "mlp", "hidden": [8]}},
         r"model\.prior: CategoricalPrior is a prior for 'categorical' latents.*or an encoder of 'categorical' latents \('categorical'\)"),
        ({**base, "encoder": {"name": "categorical", "categories": 3, "min_temperature": 2.0}}, r"min_temperature 2 is above temperature 1"),
        ({**base, "encoder": {"name": "categorical", "categories": 1}}, r"categories must be at least 2"),
    ]
    for cfg, match in cases:
        with pytest.raises(ConfigError, match=match) as info:
            vaezoo.build_model(cfg)
        assert "\n" not in str(info.value)


# -- the prior ---------------------------------------------------------------------------------


def test_the_prior_follows_the_encoder_it_is_bound_to():
    torch.manual_seed(9)
    model = vaezoo.build_model(tiny_config(temperature=0.6))
    prior, enc = model.prior, model.encoder
    unbound = CategoricalPrior(6, categories=3)
    assert type(unbound.distribution()) is OneHotCategoricals  # alone: the discrete prior
    p = prior.distribution()
    assert type(p) is RelaxedOneHotCategoricals and float(p.temperature) == pytest.approx(0.6)
    z = enc(torch.rand(3, 1, 2, 2)).rsample()
    ref = concrete_log_density(z.detach().double().view(3, 2, 3).numpy(), np.log(np.full((2, 3), 1 / 3)), 0.6).sum(-1)
    np.testing.assert_allclose(prior.log_prob(z).detach().numpy(), ref, rtol=1e-5, atol=1e-5)  # the same measure as q's
    enc.hard = True
    assert type(prior.distribution()) is OneHotCategoricals
    enc.hard = False
    model.eval()
    p = prior.distribution()
    assert type(p) is OneHotCategoricals
    draws = prior.sample(3000)
    assert ((draws == 0) | (draws == 1)).all() and abs(float(draws.mean()) - 1 / 3) < 0.03
    torch.testing.assert_close(p.log_prob(draws[:4]), torch.full((4,), 2 * math.log(1 / 3)))


def test_a_learned_prior_has_logits_and_saves_them():
    prior = CategoricalPrior(6, categories=3, learn=True)
    assert [n for n, _ in prior.named_parameters()] == ["logits"] and set(prior.state_dict()) == {"logits"}
    assert dict(CategoricalPrior(6, categories=3).state_dict()) == {}  # uniform: nothing to save
    check_prior("categorical", latent_dim=6, categories=3, learn=True)


class _Off(OneHotCategoricals):
    def log_prob(self, value):
        return super().log_prob(value) + 0.1


class _UnnormalisedPrior(CategoricalPrior):
    def distribution(self):
        return _Off(self.logits, validate_args=False)


class _WrongSampler(CategoricalPrior):
    def sample(self, n):
        z = self.logits.new_zeros(int(n), self.latent_dim)  # always the first category
        z[:, 0] = 1.0
        z[:, self.categories] = 1.0
        return z


def test_the_kit_checks_a_discrete_prior_on_its_support():
    with pytest.raises(AssertionError, match=r"exp\(log_prob\) sums to 1\.105.* over the 4 points") as info:
        check_prior(_UnnormalisedPrior(4, categories=2))
    assert "\n" not in str(info.value)
    with pytest.raises(AssertionError, match=r"sample\(4000\) does not draw from exp\(log_prob\)"):
        check_prior(_WrongSampler(4, categories=2))


# -- the model: exact log-likelihood, objectives ---------------------------------------------


def exact_log_px(model, x):
    """log p(x) = logsumexp over all K**N configurations of log p(x|z) + log p(z) (float64, eval mode)."""
    n, k = model.encoder.groups, model.encoder.categories
    z = configurations(n, k)  # (S, N*K)
    log_px_z = model.likelihood.log_prob(x, model.decode(z[:, None, :].expand(-1, len(x), -1)))  # (S, B)
    log_pz = model.prior.log_prob(z)  # (S,)
    return torch.logsumexp(log_px_z + log_pz[:, None], 0), z, log_px_z, log_pz


@torch.no_grad()
def test_eval_log_likelihood_is_the_exact_log_px_when_q_is_the_posterior():
    """N = 1: the posterior p(z|x) is one categorical, so an encoder that outputs it makes every
    importance weight equal p(x): the estimate is exact for any number of samples."""
    torch.manual_seed(10)
    model = vaezoo.build_model(tiny_config(n=1, k=4, data_shape=(3,), hidden=[])).double().eval()
    x = torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64)
    exact, z, log_px_z, log_pz = exact_log_px(model, x)
    posterior = (log_px_z[:, 0] + log_pz) - exact  # log p(z|x), (K,)
    model.encoder.head.weight.zero_()
    model.encoder.head.bias.copy_(posterior)
    for k in (1, 7, 100):
        est = model.log_likelihood(x, num_samples=k)
        torch.testing.assert_close(est, exact, rtol=1e-12, atol=1e-12)


@torch.no_grad()
def test_eval_log_likelihood_converges_to_the_enumerated_log_px():
    torch.manual_seed(11)
    model = vaezoo.build_model(tiny_config(n=2, k=3)).double().eval()
    x = torch.rand(3, 1, 2, 2, dtype=torch.float64).round()
    exact, z, log_px_z, log_pz = exact_log_px(model, x)
    q = model.encode(x)
    log_qz = q.log_prob(z[:, None, :])  # (S, B): q's masses over the support sum to 1 ...
    torch.testing.assert_close(torch.logsumexp(log_qz, 0), torch.zeros(3, dtype=torch.float64))
    expected_weight = torch.logsumexp(log_qz + (log_px_z + log_pz[:, None] - log_qz), 0)  # ... so E_q[w] = p(x) exactly
    torch.testing.assert_close(expected_weight, exact, rtol=1e-12, atol=1e-12)
    elbo = (log_qz.exp() * log_px_z).sum(0) - kl_divergence(q, model.prior.distribution())  # the exact ELBO
    assert (elbo < exact).all()
    torch.manual_seed(12)
    est = model.log_likelihood(x, num_samples=20000)
    assert (est - exact).abs().max() < 5e-3, (est, exact)
    torch.testing.assert_close(model.elbo(x, num_samples=20000)["elbo"], elbo, rtol=0, atol=0.02)


@pytest.mark.parametrize("encoder", [{}, {"hard": True}], ids=["relaxed", "hard"])
def test_every_log_weight_compares_like_with_like(encoder):
    torch.manual_seed(13)
    model = vaezoo.build_model(tiny_config(temperature=0.7, **encoder))
    x = torch.rand(4, 1, 2, 2).round()
    lw = model.log_weights(x, 5)
    z = lw.z[0].detach()
    if encoder.get("hard"):  # masses: sum_n log pi of the drawn categories
        assert ((z == 0) | (z == 1)).all()
        torch.testing.assert_close(lw.log_pz, torch.full((5, 4), 2 * math.log(1 / 3)))
    else:  # densities at the same temperature
        ref = concrete_log_density(z.double().view(5, 4, 2, 3).numpy(), np.log(np.full((2, 3), 1 / 3)), 0.7).sum(-1)
        np.testing.assert_allclose(lw.log_pz.detach().numpy(), ref, rtol=1e-5, atol=1e-5)
    for objective in ({"name": "iwae", "num_samples": 3}, {"name": "iwae", "num_samples": 3, "dreg": True},
                      {"name": "elbo", "free_bits": 0.1}, {"name": "mmd"}):
        obj = vaezoo.build_objective(objective, model)
        obj.setup(steps_per_epoch=1, dataset_size=4)
        loss, metrics = obj(model, x)
        model.zero_grad()
        loss.backward()
        assert torch.isfinite(loss) and all(torch.isfinite(v).all() for v in metrics.values()), objective
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with pytest.raises(ConfigError, match="objective 'beta_tc'.*factorises"):
        vaezoo.build_objective("beta_tc", model)


def test_free_bits_floor_the_total_kl():
    """The categorical KL does not split per coordinate, so free bits hold the batch-mean total at
    free_bits * latent_dim (the ``vae`` rule for a KL that does not factorise per dimension)."""
    torch.manual_seed(14)
    model = vaezoo.build_model(tiny_config())
    x = torch.rand(4, 1, 2, 2).round()
    torch.manual_seed(15)
    out = model.elbo(x, free_bits=0.5)
    floor = 0.5 * 6
    assert float(out["kl"].detach().mean()) < floor
    torch.testing.assert_close(out["loss"], -(out["log_px_z"] - (out["kl"] + floor - out["kl"].mean())))


def test_categorical_latents_with_a_vampprior():
    """The VampPrior is a mixture of the encoder's own posteriors, so it is in q's measure in every mode."""
    torch.manual_seed(16)
    model = vaezoo.build_model({**tiny_config(), "prior": {"name": "vamp", "components": 3}})
    x = torch.rand(4, 1, 2, 2).round()
    obj = vaezoo.build_objective({"name": "iwae", "num_samples": 2}, model)
    loss, _ = obj(model, x)
    loss.backward()
    assert torch.isfinite(loss) and int(model.encoder.steps) == 1  # the prior's encoder passes draw nothing
    model.eval()
    lp = model.log_likelihood(x, num_samples=50)
    assert torch.isfinite(lp).all() and (lp < 0).all()


# -- training ----------------------------------------------------------------------------------


def test_training_on_digits_improves_the_elbo(tmp_path, capsys):
    out = tmp_path / "run"
    code = vaezoo_main([
        "train", str(RECIPE), "--out", str(out), "train.epochs=4", "train.device=cpu", "eval.num_samples=20",
        "model.encoder.anneal_every=10", "log.images=false", "log.loggers=[jsonl]", "log.progress=false",
    ])
    assert code == 0, capsys.readouterr().err
    epochs = [r for r in read_metrics(out) if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3, 4]
    elbos = [r["val/elbo"] for r in epochs]
    assert elbos[-1] > elbos[0] + 2, elbos  # nats
    model = vaezoo.from_pretrained(str(out))
    assert model.encoder.latent == "categorical" and int(model.encoder.steps) == epochs[-1]["step"]
    steps = epochs[-1]["step"]  # 4 epochs of 21 steps: tau = exp(-0.001 * 80)
    assert float(model.encoder.current_temperature()) == pytest.approx(math.exp(-0.001 * 10 * (steps // 10)), rel=1e-6)
