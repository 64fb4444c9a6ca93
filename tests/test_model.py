"""The VAE: every built-in combination trains and round-trips, and the estimators are exact where they should be."""

import itertools
import json
import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.distributions import Independent, MultivariateNormal, Normal

import vaezoo
from vaezoo import VAE
from vaezoo.components import Decoder, Encoder
from vaezoo.errors import CheckpointError, ComponentParamError, ConfigError

SMALL = {
    "encoder": {"mlp": {"hidden": [16]}, "conv": {"channels": [4, 8]}},
    "decoder": {"mlp": {"hidden": [16]}, "conv": {"channels": [8, 4]}},
    "prior": {"normal": {}, "mixture": {"components": 3}, "vamp": {"components": 4}},
    "likelihood": {
        "bernoulli": {}, "continuous_bernoulli": {}, "gaussian": {}, "laplace": {},
        "discretized_logistic": {}, "discretized_logistic_mixture": {"components": 2},
    },
}


def small_config(encoder, decoder, prior, likelihood, data_shape, latent_dim=3):
    section = lambda kind, name: {"name": name, **SMALL[kind][name]}  # noqa: E731
    return {
        "data_shape": list(data_shape), "latent_dim": latent_dim,
        "encoder": section("encoder", encoder), "decoder": section("decoder", decoder),
        "prior": section("prior", prior), "likelihood": section("likelihood", likelihood),
    }


def data_for(likelihood, shape, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.rand((n, *shape), generator=g)
    return torch.bernoulli(u, generator=g) if likelihood == "bernoulli" else torch.round(u * 255) / 255


COMBOS = list(itertools.product(SMALL["encoder"], SMALL["decoder"], SMALL["prior"], SMALL["likelihood"]))


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28)], ids=["8x8", "28x28"])
@pytest.mark.parametrize("encoder, decoder, prior, likelihood", COMBOS, ids=["-".join(c) for c in COMBOS])
def test_every_combination_builds_steps_and_round_trips(tmp_path, shape, encoder, decoder, prior, likelihood):
    torch.manual_seed(0)
    model = vaezoo.build_model(small_config(encoder, decoder, prior, likelihood, shape))
    x = data_for(likelihood, shape)
    model.likelihood.check_data(x)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    out = model.elbo(x)
    assert set(out) == {"elbo", "log_px_z", "kl", "loss"}
    assert all(v.shape == (len(x),) and torch.isfinite(v).all() for v in out.values())
    out["loss"].mean().backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))

    if shape != (1, 8, 8):
        return  # one round trip per combination is enough
    model.save_pretrained(tmp_path)
    loaded = vaezoo.from_pretrained(tmp_path)
    for a, b in ((model, loaded),):
        torch.manual_seed(1)
        ea = a.elbo(x, num_samples=2)
        torch.manual_seed(1)
        eb = b.elbo(x, num_samples=2)
        for k in ea:
            assert torch.equal(ea[k], eb[k]), k


def test_analytic_kl_agrees_with_monte_carlo():
    torch.manual_seed(0)
    cfg = small_config("mlp", "mlp", "normal", "gaussian", (64,), latent_dim=4)
    analytic = vaezoo.build_model({**cfg, "kl": "analytic"}).double()
    mc = vaezoo.build_model({**cfg, "kl": "mc"}).double()
    mc.load_state_dict(analytic.state_dict())
    x = data_for("gaussian", (64,), n=3).double()
    exact = analytic.elbo(x)["kl"]
    draws = torch.stack([mc.elbo(x, num_samples=500)["kl"] for _ in range(20)])  # 10k samples
    se = draws.std(0) / math.sqrt(len(draws))
    assert torch.all((draws.mean(0) - exact).abs() < 4 * se + 1e-9), (draws.mean(0), exact)


def test_auto_kl_is_analytic_for_normal_and_mc_for_a_mixture_prior():
    cfg = small_config("mlp", "mlp", "normal", "gaussian", (8,))
    assert vaezoo.build_model(cfg)._analytic_kl(*_q_and_p(cfg))
    cfg = small_config("mlp", "mlp", "mixture", "gaussian", (8,))
    assert not vaezoo.build_model(cfg)._analytic_kl(*_q_and_p(cfg))
    with pytest.raises(ConfigError, match="no KL formula for Independent\\(Normal\\) against DiagonalNormalMixture; use kl='auto' or 'mc'"):
        vaezoo.build_model({**cfg, "kl": "analytic"}).elbo(torch.rand(2, 8))


def _q_and_p(cfg):
    model = vaezoo.build_model(cfg)
    return model.encode(torch.rand(2, *cfg["data_shape"])), model.prior.distribution()


# -- a linear-Gaussian model, where log p(x) and the posterior are known exactly ---------------
class LinearDecoder(Decoder):
    def __init__(self, weight, bias):
        super().__init__(weight.shape[1], (weight.shape[0],))
        self.weight = nn.Parameter(weight.clone())
        self.bias = nn.Parameter(bias.clone())

    def forward(self, z):
        return z @ self.weight.T + self.bias


class GivenGaussianEncoder(Encoder):
    """q(z|x) = N(A(x - b), diag(s^2)) with fixed A, s: the exact posterior when chosen so."""

    def __init__(self, a, bias, scale):
        super().__init__((a.shape[1],), a.shape[0])
        self.register_buffer("a", a.clone())
        self.register_buffer("bias", bias.clone())
        self.register_buffer("scale", scale.clone())

    def forward(self, x):
        loc = (x - self.bias) @ self.a.T
        return Independent(Normal(loc, self.scale.expand_as(loc)), 1)


def linear_gaussian(exact_posterior: bool, d=6, latent=2, sigma=0.5):
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(d, latent, generator=g, dtype=torch.float64))
    w = q * torch.tensor([1.5, 0.7], dtype=torch.float64)  # orthogonal columns: diagonal posterior
    b = torch.randn(d, generator=g, dtype=torch.float64)
    wtw = (w.T @ w).diagonal()
    post_var = 1.0 / (1.0 + wtw / sigma**2)
    a = (post_var[:, None] * w.T) / sigma**2
    scale = post_var.sqrt()
    if not exact_posterior:
        a, scale = a * 0.9, scale * 1.3  # an over-dispersed, shifted proposal
    model = VAE(
        GivenGaussianEncoder(a, b, scale), LinearDecoder(w, b),
        vaezoo.create("prior", "normal", latent_dim=latent).double(),
        vaezoo.create("likelihood", "gaussian", scale=sigma),
        data_shape=(d,), latent_dim=latent,
    ).double()
    marginal = MultivariateNormal(b, w @ w.T + sigma**2 * torch.eye(d, dtype=torch.float64))
    x = marginal.sample((5,))
    return model, x, marginal.log_prob(x)


def test_is_log_likelihood_is_exact_with_the_true_posterior_in_any_chunking():
    model, x, exact = linear_gaussian(exact_posterior=True)
    for max_elements in (2**24, 7):  # one chunk, and many tiny chunks
        est = model.log_likelihood(x, num_samples=50, max_elements=max_elements)
        torch.testing.assert_close(est, exact, rtol=1e-10, atol=1e-10)
    model.kl_mode = "mc"  # Monte Carlo KL at the same z: log w is constant, so even the ELBO is exact
    out = model.elbo(x, num_samples=3)
    torch.testing.assert_close(out["elbo"], exact, rtol=1e-10, atol=1e-10)


def test_is_log_likelihood_converges_to_the_exact_marginal():
    torch.manual_seed(0)
    model, x, exact = linear_gaussian(exact_posterior=False)
    errors = [(model.log_likelihood(x, num_samples=k) - exact).abs().max().item() for k in (1, 5000)]
    assert errors[1] < 0.01 < errors[0]
    elbo = model.elbo(x, num_samples=2000)["elbo"]
    iwae = model.iwae_bound(x, num_samples=2000)
    assert torch.all(elbo < iwae) and torch.all((iwae - exact).abs() < 0.05)  # a bound in expectation only


def test_bits_per_dim_is_nll_over_dims_in_bits():
    torch.manual_seed(0)
    model = vaezoo.build_model(small_config("mlp", "mlp", "normal", "bernoulli", (1, 8, 8)))
    x = data_for("bernoulli", (1, 8, 8))
    torch.manual_seed(3)
    ll = model.log_likelihood(x, num_samples=10)
    torch.manual_seed(3)
    bpd = model.bits_per_dim(x, num_samples=10)
    torch.testing.assert_close(bpd, -ll / (64 * math.log(2)))


def test_float64_sample_and_reconstruct():
    torch.manual_seed(0)
    model = vaezoo.build_model(small_config("conv", "conv", "vamp", "discretized_logistic", (1, 8, 8))).double()
    x = data_for("discretized_logistic", (1, 8, 8)).double()
    assert model.elbo(x)["loss"].dtype == torch.float64
    assert model.sample(5).shape == (5, 1, 8, 8) and model.sample(5).dtype == torch.float64
    assert model.reconstruct(x).shape == x.shape
    assert model.log_likelihood(x, num_samples=4).dtype == torch.float64


def test_free_bits_hold_the_kl_term_up():
    torch.manual_seed(0)
    model = vaezoo.build_model(small_config("mlp", "mlp", "normal", "gaussian", (8,)))
    x = torch.rand(4, 8)
    torch.manual_seed(1)
    plain = model.elbo(x)
    torch.manual_seed(1)
    held = model.elbo(x, free_bits=100.0)
    assert torch.equal(plain["elbo"], held["elbo"])
    gap = (held["loss"] - plain["loss"]).mean()
    expected = 100.0 * 3 - plain["kl"].mean()  # every dim below the floor: sum_j 100 - mean KL
    torch.testing.assert_close(gap, expected, rtol=1e-4, atol=1e-4)


def test_build_model_config_errors_name_the_key():
    cfg = small_config("mlp", "mlp", "normal", "gaussian", (8,))
    with pytest.raises(ConfigError, match=r"model\.latnt_dim: unknown key for architecture 'vae'\. Did you mean 'latent_dim'\?"):
        vaezoo.build_model({**cfg, "latnt_dim": 3})
    with pytest.raises(ConfigError, match=r"model\.prior\.name: unknown prior 'vampp'\. Did you mean 'vamp'\?"):
        vaezoo.build_model({**cfg, "prior": {"name": "vampp"}})
    with pytest.raises(ComponentParamError, match=r"model\.encoder: encoder 'mlp' has no parameter 'hiden'\. Did you mean 'hidden'\?"):
        vaezoo.build_model({**cfg, "encoder": {"name": "mlp", "hiden": [3]}})
    with pytest.raises(ConfigError, match=r"model\.encoder\.latent_dim: set by the model itself"):
        vaezoo.build_model({**cfg, "encoder": {"name": "mlp", "latent_dim": 3}})
    with pytest.raises(ConfigError, match=r"model\.data_shape: expected a list of positive integers"):
        vaezoo.build_model({**cfg, "data_shape": [0, 3]})
    assert isinstance(vaezoo.build_model(OmegaConf.create({"model": cfg, "train": {}})), VAE)


def test_from_pretrained_names_a_missing_plugin_and_lists_key_mismatches(tmp_path):
    from safetensors.torch import load_file, save_file

    model = vaezoo.build_model(small_config("mlp", "mlp", "normal", "gaussian", (8,)))
    model.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["components"]["likelihood"]["qualified_name"] == "vaezoo/gaussian"

    ghost = json.loads(json.dumps(saved))
    ghost["model"]["prior"]["name"] = "ghost"
    ghost["components"]["prior"] = {"plugin": "ghosts", "distribution": "vaezoo-ghosts", "version": "2.0"}
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "config.json").write_text(json.dumps(ghost))
    (tmp_path / "g" / "model.safetensors").write_bytes((tmp_path / "m" / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match=r"needs prior 'ghost', which is not installed; it came from plugin 'ghosts' \(distribution vaezoo-ghosts 2.0\), install it: pip install vaezoo-ghosts"):
        vaezoo.from_pretrained(tmp_path / "g")

    state = load_file(tmp_path / "m" / "model.safetensors")
    dropped = sorted(state)[0]
    state["stray.weight"] = state.pop(dropped)
    save_file(state, tmp_path / "m" / "model.safetensors")
    with pytest.raises(CheckpointError, match=rf"missing keys \['{dropped}'\], unexpected keys \['stray.weight'\]"):
        vaezoo.from_pretrained(tmp_path / "m")


def test_saved_weights_carry_config_version_and_sources(tmp_path):
    from vaezoo.serialization import read_metadata

    model = vaezoo.build_model(small_config("mlp", "mlp", "vamp", "bernoulli", (1, 8, 8)))
    model.save_pretrained(tmp_path)
    meta = read_metadata(tmp_path / "model.safetensors")
    assert json.loads(meta["config"]) == model.config
    assert meta["vaezoo_version"] == vaezoo.__version__
    assert json.loads(meta["components"])["prior"]["qualified_name"] == "vaezoo/vamp"
    assert not list(tmp_path.glob("*.tmp"))


def test_weights_load_from_bytes_as_from_the_file_and_bad_bytes_are_named(tmp_path):
    from vaezoo.serialization import load_weights, weights_bytes

    torch.manual_seed(0)
    model = vaezoo.build_model(small_config("mlp", "mlp", "vamp", "bernoulli", (1, 8, 8)))
    data = weights_bytes(model, dtype=torch.float16)
    model.save_pretrained(tmp_path, dtype=torch.float16)
    from_file = vaezoo.build_model(model.config)
    from_bytes = vaezoo.build_model(model.config)
    load_weights(from_file, tmp_path / "model.safetensors")
    load_weights(from_bytes, data, what="m.fashion")
    load_weights(vaezoo.build_model(model.config), memoryview(bytearray(data)))  # any bytes-like object
    for (k, a), b in zip(from_file.state_dict().items(), from_bytes.state_dict().values()):
        assert a.dtype == b.dtype == torch.float32 and torch.equal(a, b), k  # float16 cast back to the model's dtype
    assert not torch.equal(next(from_bytes.parameters()), next(model.parameters()))  # float16 rounding was applied
    with pytest.raises(CheckpointError, match=r"^m\.fashion: not a readable safetensors file"):
        load_weights(from_bytes, data[:100], what="m.fashion")
    other = vaezoo.build_model(small_config("mlp", "mlp", "normal", "bernoulli", (1, 8, 8)))
    with pytest.raises(CheckpointError, match=r"^weights: weights do not match the model: missing keys"):
        load_weights(other, data)


def test_float64_models_round_trip_as_float64_and_take_float32_input(tmp_path):
    torch.manual_seed(0)
    model = vaezoo.build_model(small_config("mlp", "mlp", "normal", "gaussian", (8,))).double()
    x = torch.rand(3, 8)  # float32 data into a float64 model
    assert model.elbo(x)["loss"].dtype == torch.float64
    model.save_pretrained(tmp_path)
    loaded = vaezoo.from_pretrained(tmp_path)
    assert next(loaded.parameters()).dtype == torch.float64
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_small_edge_cases_are_clear():
    model = vaezoo.build_model(small_config("mlp", "mlp", "normal", "bernoulli", (8,)))
    assert model.log_likelihood(torch.zeros(0, 8), num_samples=3).shape == (0,)
    with pytest.raises(ValueError, match="num_samples must be >= 1"):
        model.elbo(torch.zeros(2, 8), num_samples=0)
    with pytest.raises(ComponentParamError, match=r"Accepted: hidden=.*") as info:
        vaezoo.build_model({**small_config("mlp", "mlp", "normal", "bernoulli", (8,)), "encoder": {"name": "mlp", "width": 3}})
    assert "latent_dim" not in str(info.value) and "data_shape" not in str(info.value)
    with pytest.raises(vaezoo.VaezooError, match=r"'no-such-model' is neither a folder nor a pretrained model name"):
        vaezoo.from_pretrained("no-such-model")


def test_one_locator_reads_model_and_run_folders_for_every_loader(tmp_path):
    """vaezoo.loading.locate is what from_pretrained, eval, publish and push_to_hub read a folder
    with: a model folder, a run's model/ (with the run), or one line saying what is wrong."""
    from vaezoo.hub import HubError, build_folder
    from vaezoo.loading import locate
    from vaezoo.zoo.errors import ZooError
    from vaezoo.zoo.publish import publish

    model = vaezoo.build_model(small_config("mlp", "mlp", "normal", "bernoulli", (1, 8, 8)))
    run = tmp_path / "run"
    model.save_pretrained(run / "model")
    (run / "config.yaml").write_text("data: {name: digits}\n")
    assert locate(run) == (run / "model", run) and locate(run / "model") == (run / "model", run)
    model.save_pretrained(tmp_path / "alone")
    assert locate(tmp_path / "alone") == (tmp_path / "alone", None)

    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text("data: {name: digits}\n")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text((tmp_path / "alone" / "config.json").read_text())
    (tmp_path / "empty").mkdir()
    half_run = tmp_path / "half_run"  # a run whose model/ lost its weights
    (half_run / "model").mkdir(parents=True)
    (half_run / "config.yaml").write_text("data: {name: digits}\n")
    (half_run / "model" / "config.json").write_text((tmp_path / "alone" / "config.json").read_text())
    (tmp_path / "notes.yaml").write_text("x: 1\n")
    cases = {unfinished: f"no final model yet (model/ is written when training ends); continue it with `vaezoo train --resume {unfinished}`",
             tmp_path / "half": "missing model.safetensors; a saved model is a folder with config.json and model.safetensors",
             half_run: "missing model.safetensors; a saved model is a folder with config.json and model.safetensors",
             tmp_path / "empty": "neither a run folder (with model/) nor a model folder (config.json + model.safetensors)",
             tmp_path / "notes.yaml": "is a file, not a folder; expected a run folder (from vaezoo train) or a model folder",
             tmp_path / "gone": "no such folder; expected a run folder (from vaezoo train) or a model folder"}
    for folder, words in cases.items():
        if folder.name in ("notes.yaml", "gone"):  # from_pretrained reads a file or a name on its own
            for load, error in ((locate, CheckpointError), (lambda p: publish(p, name="x.y", recipe=None), ZooError),
                                (lambda p: build_folder(p, tmp_path / "out"), HubError)):
                with pytest.raises(error, match=words.split(";")[0] if load is not locate else words.replace("(", r"\(").replace(")", r"\)")):
                    load(folder)
            continue
        for load, error in ((vaezoo.from_pretrained, CheckpointError), (locate, CheckpointError),
                            (lambda p: publish(p, name="x.y", recipe=None), ZooError),
                            (lambda p: build_folder(p, tmp_path / "out"), HubError)):
            with pytest.raises(error) as info:
                load(folder)
            assert str(info.value) == f"{folder}: {words}" or str(info.value).endswith(words), (load, str(info.value))
