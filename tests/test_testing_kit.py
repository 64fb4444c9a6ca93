"""vaezoo.testing: isolation helpers, and conformance checks that pass for every built-in
component and fail with a one-line message for each way a component can break its contract."""

from __future__ import annotations

import math
import types

import pytest
import torch
from torch import nn
from torch.distributions import Distribution, Independent, Normal

import vaezoo
from vaezoo import hookimpl
from vaezoo.components import Decoder, Encoder, Likelihood, Prior
from vaezoo.errors import PluginError
from vaezoo.likelihoods.bernoulli import Bernoulli
from vaezoo.likelihoods.location_scale import Gaussian
from vaezoo.plugins import PluginWarning, discover
from vaezoo.priors.normal import StandardNormal
from vaezoo.registry import get_registry
from vaezoo.testing import (
    check_component,
    check_decoder,
    check_encoder,
    check_likelihood,
    check_plugin,
    check_prior,
    isolated_registry,
    registered_plugin,
)

from fake_dist import install_distribution

# -- every built-in passes the checks ----------------------------------------------------------

# Small sizes keep the suite fast; a built-in missing here is still checked with its defaults.
SMALL = {
    ("encoder", "mlp"): {"hidden": [16]},
    ("encoder", "conv"): {"channels": [4, 8], "hidden": 16},
    ("encoder", "categorical"): {"categories": 3, "hidden": [16]},  # latent_dim 3: one variable of 3 categories
    ("decoder", "mlp"): {"hidden": [16]},
    ("decoder", "conv"): {"channels": [8, 4], "hidden": 16},
    ("prior", "mixture"): {"components": 3},
    ("prior", "vamp"): {"components": 5},
    ("prior", "categorical"): {"categories": 2},  # latent_dim 2: one variable of 2 categories
    ("likelihood", "discretized_logistic_mixture"): {"components": 2},
}
VARIANTS = [
    ("encoder", "categorical", {"categories": 3, "hidden": [16], "hard": True}),
    ("prior", "categorical", {"categories": 2, "learn": True}),
    ("likelihood", "gaussian", {"scale": 0.5}),
    ("likelihood", "laplace", {"min_log_scale": -3.0}),
    ("likelihood", "discretized_logistic", {"bits": 3}),
    ("likelihood", "discretized_logistic_mixture", {"components": 1, "bits": 5}),
]


def _builtins():
    registry = discover(entry_points=False)
    cases = [(kind, name, SMALL.get((kind, name), {})) for kind in ("encoder", "decoder", "prior", "likelihood") for name in registry.names(kind)]
    cases += VARIANTS
    return [pytest.param(*c, id="-".join([c[0], c[1], *(f"{k}={v}" for k, v in c[2].items())])) for c in cases]


@pytest.mark.parametrize("kind, name, params", _builtins())
def test_every_builtin_component_passes_the_conformance_checks(kind, name, params):
    check_component(kind, name, **params)


@pytest.mark.parametrize("latent_dim", [1, 3])
def test_prior_checks_in_other_dimensions(latent_dim):
    check_prior("mixture", latent_dim=latent_dim, components=2)


def test_checks_accept_instances_and_leave_them_untouched():
    prior = StandardNormal(2)
    assert check_prior(prior) is prior
    lik = Gaussian()
    assert check_likelihood(lik, data_shape=(3,)) is lik
    enc = vaezoo.create("encoder", "mlp", data_shape=(5,), latent_dim=2, hidden=[8])
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    check_encoder(enc)  # shapes come from the instance
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())
    with pytest.raises(TypeError, match="only apply when the component is given by its registered name"):
        check_likelihood(lik, scale=1.0)


def test_checks_do_not_disturb_the_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_likelihood("bernoulli", data_shape=(4,))
    assert torch.equal(torch.rand(3), expected)


# -- broken likelihoods: each violation is one line naming the contract -----------------------


def _fails(check, *args, match, **kwargs):
    with pytest.raises(AssertionError) as info:
        check(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    assert __import__("re").search(match, message), message
    return message


class WrongParamShape(Gaussian):
    """Declares P=2 but asks the decoder for 3 blocks."""

    def param_shape(self, data_shape):
        return (3 * data_shape[0], *data_shape[1:])


class NoEventSum(Gaussian):
    def log_prob(self, x, params):
        loc, log_scale = params.chunk(2, dim=-(x.dim() - 1))
        return self._log_density(x.to(params.dtype), loc, log_scale)  # forgot sum_event


class NaiveGaussian(Gaussian):
    """exp then log: underflows to -inf far from the mean."""

    def log_prob(self, x, params):
        loc, log_scale = params.chunk(2, dim=-(x.dim() - 1))
        s = torch.exp(log_scale)
        pdf = torch.exp(-0.5 * ((x - loc) / s) ** 2) / (s * math.sqrt(2 * math.pi))
        return torch.log(pdf).flatten(-(x.dim() - 1)).sum(-1)


class Delegating(Distribution):
    """A distribution whose log_prob is the likelihood's own (so only normalisation is wrong)."""

    arg_constraints = {}

    def __init__(self, lik, params):
        self.lik, self.params = lik, params
        event = (params.shape[1] // lik.num_params, *params.shape[2:])
        super().__init__(params.shape[:1], event, validate_args=False)

    def log_prob(self, value):
        return self.lik.log_prob(value, self.params)


class Unnormalised(Gaussian):
    """Forgot the -log s term."""

    def _log_density(self, x, loc, log_scale):
        z = (x - loc) * torch.exp(-log_scale)
        return -0.5 * z * z - 0.5 * math.log(2 * math.pi)

    def distribution(self, params, event_dims=None):
        return Delegating(self, params)

    def sample(self, params, event_dims=None):
        return Gaussian.distribution(self, params).sample()


class HalfBernoulli(Bernoulli):
    """Masses that do not sum to 1: uses sigmoid(l) for both outcomes."""

    def log_prob(self, x, params):
        lp = torch.nn.functional.logsigmoid(params) + 0 * x
        return lp.flatten(-(x.dim() - 1)).sum(-1)

    def distribution(self, params, event_dims=None):
        return Delegating(self, params)


class FlattensBatch(Gaussian):
    """Only right for exactly one batch dim."""

    def log_prob(self, x, params):
        return super().log_prob(x, params.reshape(-1, *params.shape[-(x.dim() - 1):])[: x.shape[0]])


class Detached(Gaussian):
    def log_prob(self, x, params):
        return super().log_prob(x, params.detach())


class AcceptsNaN(Gaussian):
    def check_data(self, x):
        pass


class Always32(Gaussian):
    def log_prob(self, x, params):
        return super().log_prob(x.float(), params.float())


class DisagreeingDistribution(Gaussian):
    def distribution(self, params, event_dims=None):
        loc, log_scale = params.chunk(2, dim=1)
        return Independent(Normal(loc, torch.exp(log_scale) * 2), params.dim() - 1)


class ForgetfulScale(Gaussian):
    """Keeps a learned quantity in a non-persistent buffer: lost on save/load."""

    def __init__(self):
        super().__init__(scale=1.0)
        self.register_buffer("shift", torch.randn(()), persistent=False)

    def loc_log_scale(self, params, event_dims):
        return params + self.shift, torch.zeros_like(params)


@pytest.mark.parametrize(
    "lik, match",
    [
        (WrongParamShape(), r"^likelihood 'WrongParamShape': param_shape\(\(2, 3, 3\)\) is \(6, 3, 3\), but num_params=2 means 2 blocks of 2 channel\(s\): expected \(4, 3, 3\)"),
        (NoEventSum(), r"^likelihood 'NoEventSum': log_prob\(x, params\) for x \(4, 2, 3, 3\) and params \(4, 4, 3, 3\) returned shape \(4, 2, 3, 3\), expected \(4,\) -- sum over the event dims"),
        (NaiveGaussian(), r"^likelihood 'NaiveGaussian': log_prob is not finite at params=(\+|-|±)30"),
        (Unnormalised(), r"^likelihood 'Unnormalised': exp\(log_prob\) of one data element integrates to [\d.]+ over .* \(expected 1\)"),
        (FlattensBatch(), r"log_prob\(x, params\) with a leading sample dim: params \(3, 4, 4, 3, 3\) returned shape \(4,\), expected \(3, 4\)"),
        (Detached(), r"log_prob does not depend on params \(no or zero gradient\)"),
        (AcceptsNaN(), r"check_data accepted data containing NaN; it must raise vaezoo.errors.DataError"),
        (Always32(), r"log_prob returned torch.float32 for torch.float64 inputs"),
        (DisagreeingDistribution(), r"distribution\(params\).log_prob\(x\) differs from log_prob\(x, params\)"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Likelihood) else "",
)
def test_broken_likelihood_is_caught_with_one_line(lik, match):
    _fails(check_likelihood, lik, match=match)


def test_state_lost_on_save_and_load_is_caught():
    # By name, the round trip loads into a freshly built instance, as from_pretrained does.
    plugin = types.SimpleNamespace(vaezoo_register_likelihoods=hookimpl(lambda register: register("forgetful", ForgetfulScale)))
    with isolated_registry(("forgetful", plugin)):
        _fails(check_likelihood, "forgetful", match=r"^likelihood 'forgetful': outputs differ after saving and loading the state_dict through safetensors")


def test_discrete_masses_must_sum_to_one_over_the_support():
    _fails(
        check_likelihood, HalfBernoulli(), support=[0.0, 1.0],
        match=r"^likelihood 'HalfBernoulli': discrete=True, but the probabilities of one data element over its 2 possible values \(from support= given to check_likelihood\) sum to [\d.]+, not 1",
    )


def test_discrete_likelihood_with_unknown_support_asks_for_it():
    class Poissonish(Likelihood):
        discrete = True

        def log_prob(self, x, params):
            return torch.distributions.Poisson(params.exp()).log_prob(x).sum(-1)

        def distribution(self, params):
            return Independent(torch.distributions.Poisson(params.exp()), params.dim() - 1)

    _fails(check_likelihood, Poissonish(), data_shape=(2,), match=r"cannot enumerate .* pass support=\[\.\.\.\] to check_likelihood")


def test_raising_component_code_is_reported_with_the_call():
    class Raises(Gaussian):
        def mean(self, params, event_dims=None):
            raise RuntimeError("mean is\nnot implemented")

    _fails(check_likelihood, Raises(), match=r"^likelihood 'Raises': mean\(params\) raised RuntimeError: mean is not implemented$")


# -- broken priors, encoders, decoders ----------------------------------------------------------


class NoLogDet(Prior):
    """A scaled normal whose log_prob forgets the Jacobian term."""

    def __init__(self, latent_dim):
        super().__init__(latent_dim)
        self.log_scale = nn.Parameter(torch.full((latent_dim,), 0.7))

    def distribution(self):
        return Independent(Normal(torch.zeros_like(self.log_scale), self.log_scale.exp()), 1)

    def log_prob(self, z):
        return Normal(0.0, 1.0).log_prob(z / self.log_scale.exp()).sum(-1)


class WrongEvent(Prior):
    def distribution(self):
        return Normal(torch.zeros(self.latent_dim), torch.ones(self.latent_dim))  # not Independent


class ShiftedSampler(StandardNormal):
    def sample(self, n):
        return super().sample(n) + 1.0


class DropsLeadingDims(StandardNormal):
    def log_prob(self, z):
        return super().log_prob(z.reshape(-1, self.latent_dim))


@pytest.mark.parametrize(
    "prior, match",
    [
        (NoLogDet(2), r"^prior 'NoLogDet': (exp\(log_prob\) integrates to [\d.]+ over .* \(expected 1\)|distribution\(\).log_prob\(z\) differs)"),
        (WrongEvent(2), r"^prior 'WrongEvent': distribution\(\) has batch shape \(2,\) and event shape \(\), expected \(\) and \(2,\)"),
        (ShiftedSampler(2), r"^prior 'ShiftedSampler': sample\(4000\) does not draw from exp\(log_prob\), which integrates to 1: along .* the samples' CDF is off by"),
        (DropsLeadingDims(2), r"log_prob\(z\) for z \(3, 4, latent_dim\) returned shape \(12,\), expected \(3, 4\) -- keep leading dims"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Prior) else "",
)
def test_broken_prior_is_caught_with_one_line(prior, match):
    _fails(check_prior, prior, match=match)


# -- the prior check compares sample() with exp(log_prob) beyond the mean -------------------------

SAMPLER_FAILS = (r"^prior '\w+': sample\(4000\) does not draw from exp\(log_prob\), which integrates to 1: "
                 r"along (z|z\[[01]\]|\(z\[0\] [+-] z\[1\]\)/sqrt\(2\)) the samples' CDF is off by [\d.]+ at \S+ "
                 r"\(allowed 0\.0\d+\); the samples have mean \S+ and sd \S+, the density mean \S+ and sd \S+$")
NOT_NORMALISED = (r"^prior '\w+': exp\(log_prob\) integrates to [\d.]+ over \[\S+, \S+\]( x \[\S+, \S+\])? "
                  r"\(expected 1\): log_prob is not a normalised density")


def _builtin_prior_classes():
    from vaezoo.priors.mixture import GaussianMixture
    from vaezoo.priors.vamp import VampPrior

    return [(StandardNormal, {}), (GaussianMixture, {"components": 3}), (VampPrior, {"components": 5})]


def _wrong_sampler(base, scale, shift):
    """``base`` with sample(n) drawing ``scale * z + shift`` for z from the right distribution."""
    def sample(self, n):
        return base.sample(self, n) * scale + shift

    return type(f"Wrong{base.__name__}", (base,), {"sample": sample})


def _realnvp():
    """The example prior of plugins/vaezoo-flows, imported from its source folder if not installed."""
    import importlib.util
    import sys
    from pathlib import Path

    if importlib.util.find_spec("vaezoo_flows") is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "vaezoo-flows" / "src"))
    from vaezoo_flows.realnvp import RealNVPPrior

    return RealNVPPrior


@pytest.mark.parametrize("latent_dim", [1, 2])
def test_the_sample_check_passes_for_every_builtin_and_example_prior(latent_dim):
    for cls, params in _builtin_prior_classes():
        check_prior(cls(latent_dim, **params))
    check_prior(_realnvp()(latent_dim, layers=2, hidden=8))


def test_the_sample_check_has_no_false_alarms_over_seeds():
    # A correct prior fails with probability below 1e-9 per check: every seed must pass.
    classes = _builtin_prior_classes()
    for seed in range(8):
        for latent_dim in (1, 2):
            for cls, params in classes[1:]:
                check_prior(cls(latent_dim, **params), seed=seed)
        check_prior(_realnvp()(2, layers=2, hidden=8), seed=seed)


@pytest.mark.parametrize("latent_dim", [1, 2])
@pytest.mark.parametrize("scale, shift", [(2.0, 0.0), (0.2, 0.0), (1.0, 0.5), (1.0, 10.0)], ids=["2x", "0.2x", "shift0.5", "shift10"])
def test_a_sampler_at_the_wrong_scale_or_place_is_blamed_on_sample(scale, shift, latent_dim):
    for base, params in _builtin_prior_classes():
        message = _fails(check_prior, _wrong_sampler(base, scale, shift)(latent_dim, **params), match=SAMPLER_FAILS)
        assert "log_prob is not" not in message, message


class _DensityOf(Distribution):
    """The distribution of a prior whose only density is its own log_prob, with no sampler."""

    arg_constraints = {}

    def __init__(self, prior):
        self.prior = prior
        super().__init__(torch.Size(), torch.Size([prior.latent_dim]), validate_args=False)

    def log_prob(self, value):
        return self.prior.log_prob(value)


class HandWritten(Prior):
    """N(loc, 1) written out by hand; class attributes break it: log_prob + ``const`` evaluated
    at ``z / lp_scale``; sample() drawing ``scale * u + shift`` around loc."""

    const, lp_scale, scale, shift = 0.0, 1.0, 1.0, 0.0

    def __init__(self, latent_dim):
        super().__init__(latent_dim)
        self.loc = nn.Parameter(torch.zeros(latent_dim))

    def distribution(self):
        return _DensityOf(self)

    def log_prob(self, z):
        return Normal(self.loc, 1.0).log_prob(z / self.lp_scale).sum(-1) + self.const

    def sample(self, n):
        u = torch.randn(n, self.latent_dim, dtype=self.loc.dtype)
        return (self.loc + self.scale * u + self.shift).detach()


def _hand_written(**broken):
    return type("HandWritten", (HandWritten,), broken)


@pytest.mark.parametrize("latent_dim", [1, 2])
@pytest.mark.parametrize("broken", [{"scale": 2.0}, {"scale": 0.2}, {"shift": 1.0}, {"shift": 10.0}, {"scale": 50.0}],
                         ids=["2x", "0.2x", "shift1", "shift10", "50x"])
def test_a_wrong_sampler_is_blamed_on_sample_also_when_the_distribution_cannot_sample(broken, latent_dim):
    # Only sample() locates the density here: the quadrature must find it by itself.
    check_prior(_hand_written()(latent_dim))
    message = _fails(check_prior, _hand_written(**broken)(latent_dim), match=SAMPLER_FAILS)
    assert "log_prob is not" not in message, message


@pytest.mark.parametrize("latent_dim", [1, 2])
@pytest.mark.parametrize("broken", [{"const": 0.5}, {"const": -0.3}, {"lp_scale": 2.0}, {"lp_scale": 0.5}],
                         ids=["plus-constant", "minus-constant", "wide-no-jacobian", "narrow-no-jacobian"])
def test_a_wrong_log_prob_is_blamed_on_log_prob(broken, latent_dim):
    message = _fails(check_prior, _hand_written(**broken)(latent_dim), match=NOT_NORMALISED)
    assert "sample(" not in message, message


def test_a_sampler_missing_a_mode_is_blamed_on_sample():
    class TwoModes(HandWritten):
        def log_prob(self, z):
            a = Normal(self.loc - 4, 0.5).log_prob(z).sum(-1)
            b = Normal(self.loc + 4, 0.5).log_prob(z).sum(-1)
            return torch.logaddexp(a, b) - math.log(2)

        def sample(self, n):  # only the right-hand mode
            return (self.loc + 4 + 0.5 * torch.randn(n, self.latent_dim, dtype=self.loc.dtype)).detach()

    for latent_dim in (1, 2):
        _fails(check_prior, TwoModes(latent_dim), match=SAMPLER_FAILS)


def test_the_prior_check_is_seeded_and_fast():
    import time

    wrong = _wrong_sampler(StandardNormal, 1.5, 0.0)(2)
    first = _fails(check_prior, wrong, match=SAMPLER_FAILS)
    assert _fails(check_prior, wrong, match=SAMPLER_FAILS) == first  # the same draws every time
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    from vaezoo.priors.vamp import VampPrior

    started = time.perf_counter()
    check_prior(VampPrior(2, components=5))
    elapsed = time.perf_counter() - started
    assert torch.equal(torch.rand(3), expected)  # the caller's RNG is left alone
    assert elapsed < 2.0, f"check_prior took {elapsed:.2f} s for a 2-D VampPrior"  # about 0.1 s when idle


class SampleOnlyEncoder(Encoder):
    def __init__(self, data_shape=(4,), latent_dim=2):
        super().__init__(data_shape, latent_dim)
        self.net = nn.Linear(4, 2)

    def forward(self, x):
        return Independent(Normal(self.net(x).detach(), 1.0), 1)


class BatchShapeEncoder(SampleOnlyEncoder):
    def forward(self, x):
        return Normal(self.net(x), 1.0)  # batch (B, D), event ()


class SqueezingDecoder(Decoder):
    def __init__(self, latent_dim=2, param_shape=(3,)):
        super().__init__(latent_dim, param_shape)
        self.net = nn.Linear(latent_dim, 3)

    def forward(self, z):
        return self.net(z).squeeze(0)  # breaks B=1


class TwoDimOnlyDecoder(SqueezingDecoder):
    def forward(self, z):
        return self.net(z.reshape(-1, self.latent_dim)).reshape(-1, 3)


def test_broken_encoders_and_decoders_are_caught_with_one_line():
    _fails(check_encoder, SampleOnlyEncoder(), match=r"^encoder 'SampleOnlyEncoder': rsample\(\) carries no gradient to the encoder")
    _fails(check_encoder, BatchShapeEncoder(), match=r"batch shape \(4, 2\) and event shape \(\), expected \(4,\) and \(2,\)")
    _fails(check_decoder, SqueezingDecoder(), match=r"^decoder 'SqueezingDecoder': forward\(z\) for z \(1, 2\) returned shape \(3,\), expected \(1, 3\)")
    _fails(check_decoder, TwoDimOnlyDecoder(), match=r"forward\(z\) for z \(3, 4, 2\) returned shape \(12, 3\), expected \(3, 4, 3\) -- any number of leading dims")


def test_factory_returning_the_wrong_type_fails_the_check():
    plugin = types.SimpleNamespace(vaezoo_register_priors=hookimpl(lambda register: register("oops", dict)))
    with isolated_registry(("wrong", plugin)):
        _fails(check_prior, "oops", match=r"^prior 'oops': cannot be created: prior 'wrong/oops' .* returned a dict, expected a vaezoo.Prior")


# -- registries ----------------------------------------------------------------------------------

EXTRA = types.ModuleType("vaezoo_kit_extra")
exec(
    "from vaezoo import hookimpl\n"
    "from vaezoo.likelihoods.location_scale import Laplace\n"
    "class Wide(Laplace):\n"
    "    pass\n"
    "@hookimpl\n"
    "def vaezoo_register_likelihoods(register):\n"
    "    register('wide_laplace', Wide)\n",
    EXTRA.__dict__,
)


def test_isolated_registry_ignores_installed_entry_points(tmp_path, monkeypatch):
    install_distribution(
        tmp_path, monkeypatch, dist="vaezoo-leaky", version="1.0", entry_points={"leaky": "leaky_plugin"},
        modules={"leaky_plugin": "from vaezoo import hookimpl\n@hookimpl\ndef vaezoo_register_priors(register):\n    register('leaked', 'vaezoo.priors.normal:StandardNormal')\n"},
    )
    monkeypatch.setenv("VAEZOO_PLUGINS", "leaky")
    assert "leaked" in vaezoo.list_components("prior")
    with isolated_registry(EXTRA) as registry:
        assert "leaked" not in vaezoo.list_components("prior")
        assert registry.get("likelihood", "wide_laplace").qualified_name == "vaezoo_kit_extra/wide_laplace"
        check_likelihood("wide_laplace", data_shape=(3,))
    assert "leaked" in vaezoo.list_components("prior")
    with isolated_registry(EXTRA, builtins=False):
        assert vaezoo.list_components("likelihood") == ["wide_laplace"]


def test_registered_plugin_adds_to_the_current_registry_and_restores_it():
    before = get_registry()
    with registered_plugin(EXTRA, name="extra") as registry:
        assert get_registry() is registry
        assert {"wide_laplace", "gaussian"} <= set(vaezoo.list_components("likelihood"))
        assert check_plugin("extra") == [("likelihood", "wide_laplace")]
        model = vaezoo.build_model({
            "data_shape": [4], "latent_dim": 2, "encoder": {"name": "mlp", "hidden": [8]},
            "decoder": {"name": "mlp", "hidden": [8]}, "prior": "normal", "likelihood": "wide_laplace",
        })
        assert model.sources["likelihood"]["plugin"] == "extra"
        assert model.elbo(torch.randn(3, 4))["loss"].shape == (3,)
    assert get_registry() is before
    assert "wide_laplace" not in vaezoo.list_components("likelihood")


def test_registered_plugin_strict_turns_problems_into_errors():
    raising = types.SimpleNamespace(vaezoo_register_priors=hookimpl(lambda register: 1 / 0))
    with pytest.raises(PluginError, match=r"plugin 'boom' raised in a hook: ZeroDivisionError"):
        with registered_plugin(raising, name="boom"):
            pass
    clash = types.SimpleNamespace(vaezoo_register_priors=hookimpl(lambda register: register("normal", StandardNormal)))
    with pytest.raises(PluginError, match=r"prior 'normal' is registered by plugin 'vaezoo'.* and plugin 'clash'; use a qualified name: vaezoo/normal, clash/normal"):
        with registered_plugin(clash, name="clash"):
            pass
    with pytest.warns(PluginWarning, match="prior 'normal' is registered by"):
        with registered_plugin(clash, name="clash", strict=False):
            assert vaezoo.create("prior", "clash/normal", latent_dim=2).latent_dim == 2
    with pytest.raises(PluginError, match="already loaded"):
        with registered_plugin(clash, name="vaezoo"):
            pass


def test_registered_plugin_reports_clashes_as_discovery_does_and_only_its_own():
    from vaezoo.plugins import report_conflicts

    clash = types.SimpleNamespace(vaezoo_register_priors=hookimpl(lambda register: register("normal", StandardNormal)))
    with pytest.warns(PluginWarning) as seen, registered_plugin(clash, name="clash", strict=False) as registry:
        pass
    with pytest.warns(PluginWarning) as expected:
        report_conflicts(registry)  # the message discovery gives for the same registry
    assert [str(w.message) for w in seen] == [str(w.message) for w in expected]
    # a clash among plugins already loaded is not this plugin's problem
    other = types.SimpleNamespace(vaezoo_register_priors=hookimpl(lambda register: register("other", StandardNormal)))
    with pytest.warns(PluginWarning), isolated_registry(("clash", clash), strict=False):
        with registered_plugin(other, name="other") as registry:  # strict: would raise on any reported clash
            assert registry.get("prior", "other/other").qualified_name == "other/other"
    # a zoo entry registered again is reported too
    from vaezoo.zoo.catalogue import read_catalogue

    name, fields = sorted(read_catalogue().items())[0]
    twin = types.SimpleNamespace(vaezoo_register_pretrained=hookimpl(lambda register: register(name, fields)))
    with pytest.raises(PluginError, match=f"pretrained model '{name}' is registered by plugin 'vaezoo'.* and plugin 'twin'"):
        with registered_plugin(twin, name="twin"):
            pass


def test_check_plugin_names_unknown_and_broken_plugins():
    with pytest.raises(AssertionError, match="no plugin named 'nope' is loaded; loaded: vaezoo"):
        check_plugin("nope")
    raising = types.SimpleNamespace(vaezoo_register_priors=hookimpl(lambda register: 1 / 0))
    with pytest.warns(PluginWarning), isolated_registry(("boom", raising), strict=False):
        with pytest.raises(AssertionError, match="plugin 'boom' failed to load: raised in a hook"):
            check_plugin("boom")
