"""Every defined architecture x objective x prior x likelihood combination builds and takes one
optimisation step on 8x8 and 28x28 data; undefined ones fail at build time with one line saying why.
A prior of latents other than real vectors (``Prior.latents``, e.g. ``categorical``) is paired with
the built-in encoder of its latents (``Encoder.latent``) in place of the nets' encoder.

The components are enumerated from the registry (the built-ins, plugin ``vaezoo``), not from
hard-coded lists, so a new built-in component is exercised here as soon as it is registered.
The MLP nets cover every combination on both sizes; the conv nets cover every objective, prior
and likelihood at least once on each size. Everything is tiny so the file runs in seconds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

import vaezoo
from vaezoo.errors import ConfigError
from vaezoo.registry import get_registry
from vaezoo.testing import isolated_registry

BUILTIN = "vaezoo/*"  # qualified-name pattern: only what vaezoo itself registers
SIZES = {"8x8": [1, 8, 8], "28x28": [1, 28, 28]}
BATCH = 4
LATENT = 3

# Small sizes for the components that take them; a built-in not named here runs with its defaults.
COMPONENT_PARAMS: dict[str, dict[str, dict[str, Any]]] = {
    "encoder": {"categorical": {"categories": 3, "hidden": [16]}},
    "prior": {"vamp": {"components": 2}, "mixture": {"components": 2}, "categorical": {"categories": 3}},
    "likelihood": {"discretized_logistic_mixture": {"components": 2}},
}
NETS = {
    "mlp": ({"name": "mlp", "hidden": [16]}, {"name": "mlp", "hidden": [16]}),
    "conv": ({"name": "conv", "channels": [4, 8], "hidden": 16}, {"name": "conv", "channels": [8, 4], "hidden": 16}),
}
# Each objective's variants (label suffix, params); one default variant for any other objective.
OBJECTIVE_VARIANTS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "iwae": [("", {"num_samples": 2}), ("[dreg]", {"num_samples": 2, "dreg": True})],
}
# The combinations that must be refused at build time: (architecture, objective, prior) -> what the
# message must say; prior None: with every prior.
REFUSED = {
    ("vae", "beta_tc", "mixture"): ("beta_tc", "mixture", "factorises"),
    ("vae", "beta_tc", "vamp"): ("beta_tc", "vamp", "factorises"),
    ("vae", "beta_tc", "categorical"): ("beta_tc", "categorical", "factorises"),
    ("hierarchical", "beta_tc", None): ("beta_tc", "one latent vector", "'hierarchical'"),
    ("hierarchical", "mmd", None): ("mmd", "one latent vector", "'hierarchical'"),
}


# The models that cannot be assembled: (architecture, prior) -> what build_model's one-line ConfigError must say.
BUILD_REFUSED = {
    ("hierarchical", "categorical"): ("model.prior", "'categorical' latents", "'real' latents"),
}


def refusal(architecture: str, objective: str, prior: str) -> tuple[str, ...] | None:
    """What the refusal of this combination must say, or None when it must build."""
    return REFUSED.get((architecture, objective, prior)) or REFUSED.get((architecture, objective, None))


def _builtins() -> dict[str, list[str]]:
    with isolated_registry():  # built-ins only, whatever is installed (collection runs before conftest's isolation)
        return {kind: vaezoo.list_components(kind, BUILTIN) for kind in ("architecture", "objective", "prior", "likelihood")}


def _latent_encoders() -> dict[str, str]:
    """Each built-in prior of latents other than ``real`` -> the built-in encoder of its latents."""
    with isolated_registry():
        registry = get_registry()
        families = {n: getattr(registry.get("prior", n).load(), "latents", ("real",)) for n in vaezoo.list_components("prior", BUILTIN)}
        encoders = {n: getattr(registry.get("encoder", n).load(), "latent", "real") for n in vaezoo.list_components("encoder", BUILTIN)}
    out = {}
    for prior, latents in families.items():
        if "real" not in latents:
            out[prior] = next(e for e, latent in sorted(encoders.items()) if latent in latents)
    return out


LATENT_ENCODERS = _latent_encoders()


def _encoder(nets: str, prior: str) -> dict[str, Any]:
    """The nets' encoder, or for a prior of other latents the encoder of its latents (MLP-bodied whatever the nets)."""
    name = LATENT_ENCODERS.get(prior)
    if name is None:
        return dict(NETS[nets][0])
    return {"name": name, **COMPONENT_PARAMS["encoder"].get(name, {})}


def _vae_config(data_shape: list[int], nets: str, prior: str, likelihood: str) -> dict[str, Any]:
    _, decoder = NETS[nets]
    return {
        "architecture": "vae",
        "data_shape": list(data_shape),
        "latent_dim": LATENT,
        "encoder": _encoder(nets, prior),
        "decoder": dict(decoder),
        "prior": {"name": prior, **COMPONENT_PARAMS["prior"].get(prior, {})},
        "likelihood": {"name": likelihood, **COMPONENT_PARAMS["likelihood"].get(likelihood, {})},
    }


# The hierarchical model's top level is 2-d: prior parameters that must fit it.
TOP_PRIOR_PARAMS: dict[str, dict[str, Any]] = {"categorical": {"categories": 2}}


def _hierarchical_config(data_shape: list[int], nets: str, prior: str, likelihood: str) -> dict[str, Any]:
    blocks = {"blocks": "mlp", "hidden": [16]} if nets == "mlp" else {"blocks": "conv", "channels": [4, 8]}
    return {
        "architecture": "hierarchical",
        "data_shape": list(data_shape),
        "latent_dims": [LATENT, 2],
        **blocks,
        "prior": {"name": prior, **COMPONENT_PARAMS["prior"].get(prior, {}), **TOP_PRIOR_PARAMS.get(prior, {})},
        "likelihood": {"name": likelihood, **COMPONENT_PARAMS["likelihood"].get(likelihood, {})},
    }


# architecture -> model config of (data_shape, nets, prior, likelihood)
ARCHITECTURE_CONFIGS = {"vae": _vae_config, "hierarchical": _hierarchical_config}
# architecture -> parameter-name prefixes of its inference and generative parts (both must learn)
PARTS = {"vae": ("encoder.", "decoder."), "hierarchical": ("up.", "out.")}


@dataclass(frozen=True)
class Combo:
    architecture: str
    objective: str
    variant: str
    objective_params: tuple = field(compare=False)
    prior: str
    likelihood: str
    nets: str
    size: str

    @property
    def id(self) -> str:
        return f"{self.architecture}-{self.objective}{self.variant}-{self.prior}-{self.likelihood}-{self.nets}-{self.size}"

    @property
    def refused(self) -> bool:
        return refusal(self.architecture, self.objective, self.prior) is not None

    @property
    def build_refused(self) -> bool:
        return (self.architecture, self.prior) in BUILD_REFUSED

    def model_config(self) -> dict[str, Any]:
        return ARCHITECTURE_CONFIGS[self.architecture](SIZES[self.size], self.nets, self.prior, self.likelihood)

    def objective_section(self) -> dict[str, Any]:
        return {"name": self.objective, **dict(self.objective_params)}


def _objectives(names: list[str]) -> list[tuple[str, str, tuple]]:
    return [(name, label, tuple(sorted(params.items()))) for name in names for label, params in OBJECTIVE_VARIANTS.get(name, [("", {})])]


def _combos() -> tuple[list[Combo], list[str]]:
    """Every combination with the MLP nets on each size; a covering set with the conv nets."""
    names = _builtins()
    objectives = _objectives(names["objective"])
    combos: list[Combo] = []
    for arch in names["architecture"]:
        if arch not in ARCHITECTURE_CONFIGS:
            continue
        for size, (obj, label, params), prior, lik in itertools.product(SIZES, objectives, names["prior"], names["likelihood"]):
            combos.append(Combo(arch, obj, label, params, prior, lik, "mlp", size))
        first_prior = "normal" if "normal" in names["prior"] else names["prior"][0]
        first_lik = "bernoulli" if "bernoulli" in names["likelihood"] else names["likelihood"][0]
        second_lik = "gaussian" if "gaussian" in names["likelihood"] else first_lik
        for size in SIZES:
            cover = [Combo(arch, o, label, p, first_prior, first_lik, "conv", size) for o, label, p in objectives]
            cover += [Combo(arch, "elbo", "", (), prior, second_lik, "conv", size) for prior in names["prior"]]
            cover += [Combo(arch, "elbo", "", (), first_prior, lik, "conv", size) for lik in names["likelihood"]]
            combos += [c for c in dict.fromkeys(cover) if not c.refused and not c.build_refused]
    unknown = [a for a in names["architecture"] if a not in ARCHITECTURE_CONFIGS]
    return combos, unknown


COMBOS, UNKNOWN_ARCHITECTURES = _combos()
BUILT = [c for c in COMBOS if not c.refused and not c.build_refused]
REFUSED_COMBOS = [c for c in COMBOS if c.refused and not c.build_refused]
BUILD_REFUSED_COMBOS = list({(c.architecture, c.prior, c.size): c for c in COMBOS if c.build_refused and c.nets == "mlp"}.values())


pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(likelihood: str, data_shape: list[int]) -> torch.Tensor:
    u = torch.rand(BATCH, *data_shape)
    if vaezoo.create("likelihood", likelihood, **COMPONENT_PARAMS["likelihood"].get(likelihood, {})).wants == "binary":
        return u.round()
    return (u * 255).round().clamp(1, 254) / 255  # on the 8-bit grid, strictly inside (0, 1)


def test_the_registry_gives_what_this_file_enumerates():
    names = _builtins()
    assert not UNKNOWN_ARCHITECTURES, (
        f"built-in architectures {UNKNOWN_ARCHITECTURES} have no model config in ARCHITECTURE_CONFIGS of this test"
    )
    for kind in ("architecture", "objective", "prior", "likelihood"):
        assert names[kind], f"no built-in {kind} registered"
    assert {"elbo", "iwae", "beta_tc", "mmd"} <= set(names["objective"])
    assert {"normal", "mixture", "vamp"} <= set(names["prior"])
    assert {"mlp", "conv"} <= set(vaezoo.list_components("encoder", BUILTIN)) & set(vaezoo.list_components("decoder", BUILTIN))
    per_size = len(_objectives(names["objective"])) * len(names["prior"]) * len(names["likelihood"])
    assert sum(c.nets == "mlp" for c in COMBOS) == len(SIZES) * len(names["architecture"]) * per_size
    for size in SIZES:  # the conv nets meet every objective, prior and likelihood on each size
        conv = [c for c in BUILT if c.nets == "conv" and c.size == size]
        assert {(c.objective, c.variant) for c in conv} == {(o, v) for o, v, _ in _objectives(names["objective"])}
        assert {c.prior for c in conv} == set(names["prior"])
        assert {c.likelihood for c in conv} == set(names["likelihood"])


@pytest.mark.parametrize("combo", BUILT, ids=lambda c: c.id)
def test_combination_builds_and_takes_one_step(combo):
    torch.manual_seed(0)
    model = vaezoo.build_model(combo.model_config())
    assert model.config["architecture"] == combo.architecture
    objective = vaezoo.build_objective(combo.objective_section(), model)
    objective.setup(steps_per_epoch=2, dataset_size=32)
    schedule = objective.schedule(0)
    assert isinstance(schedule, dict) and all(isinstance(v, float) for v in schedule.values()), schedule

    x = _batch(combo.likelihood, SIZES[combo.size])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert before, "the model has no parameters"
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    optimizer.zero_grad()
    loss, metrics = objective(model, x, **schedule)
    assert loss.shape == () and torch.isfinite(loss), f"loss {loss}"
    assert metrics and "loss" in metrics, sorted(metrics)
    for name, value in metrics.items():
        assert value.shape == (BATCH,), f"metric {name!r} has shape {tuple(value.shape)}, expected ({BATCH},)"
        assert torch.isfinite(value).all(), f"metric {name!r} is not finite: {value}"
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert grads, "no parameter received a gradient"
    for name, grad in grads.items():
        assert torch.isfinite(grad).all(), f"gradient of {name} is not finite"
    optimizer.step()
    changed = [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert changed, "the optimisation step changed no parameter"
    inference, generative = PARTS[combo.architecture]
    assert any(n.startswith(inference) for n in changed) and any(n.startswith(generative) for n in changed), changed


@pytest.mark.parametrize("combo", REFUSED_COMBOS, ids=lambda c: c.id)
def test_undefined_combination_is_refused_in_one_line(combo):
    model = vaezoo.build_model(combo.model_config())  # the model itself is fine; the objective cannot train it
    with pytest.raises(ConfigError) as info:
        vaezoo.build_objective(combo.objective_section(), model)
    message = str(info.value)
    assert message and "\n" not in message, repr(message)
    for needed in refusal(combo.architecture, combo.objective, combo.prior):
        assert needed in message, f"{needed!r} not in {message!r}"
    assert message.startswith(f"objective {combo.objective!r}"), message


@pytest.mark.parametrize("combo", BUILD_REFUSED_COMBOS, ids=lambda c: c.id)
def test_a_model_with_a_prior_of_other_latents_is_refused_in_one_line(combo):
    with pytest.raises(ConfigError) as info:
        vaezoo.build_model(combo.model_config())
    message = str(info.value)
    assert message and "\n" not in message, repr(message)
    for needed in BUILD_REFUSED[(combo.architecture, combo.prior)]:
        assert needed in message, f"{needed!r} not in {message!r}"


@pytest.mark.parametrize("size", SIZES)
def test_the_refused_combinations_are_exactly_the_expected_ones(size):
    """Build every MLP combination's model and objective: a newly refused one, or one no longer refused, fails here."""
    refused, unbuilt = set(), set()
    for combo in (c for c in COMBOS if c.nets == "mlp" and c.size == size and not c.variant):
        torch.manual_seed(0)
        try:
            model = vaezoo.build_model(combo.model_config())
        except ConfigError as exc:
            assert "\n" not in str(exc), repr(str(exc))
            unbuilt.add((combo.architecture, combo.prior))
            continue
        try:
            vaezoo.build_objective(combo.objective_section(), model)
        except ConfigError as exc:
            assert "\n" not in str(exc), repr(str(exc))
            refused.add((combo.architecture, combo.objective, combo.prior, combo.likelihood))
    expected = {
        (c.architecture, c.objective, c.prior, c.likelihood)
        for c in COMBOS
        if c.nets == "mlp" and c.size == size and not c.variant and refusal(c.architecture, c.objective, c.prior)
        and not c.build_refused
    }
    assert expected and refused == expected
    assert unbuilt == set(BUILD_REFUSED)
