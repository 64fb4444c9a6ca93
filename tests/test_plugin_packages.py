"""The real plugin packages in plugins/, once installed (CI: pip install ./plugins/*).

Skipped when they are not installed. Checks their packaging (entry points, dependencies),
discovery and listing through the CLI, the conformance checks of ``vaezoo.testing`` on
every component they add, and one tiny end-to-end training run of the config that uses them.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import vaezoo
from vaezoo.plugins import PluginWarning, discover
from vaezoo.registry import reset_registry
from vaezoo.testing import check_likelihood, check_plugin, check_prior

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "digits_flow_studentt.yaml"
PACKAGES = {  # entry-point name -> (distribution, module, what it registers)
    "flows": ("vaezoo-flows", "vaezoo_flows", {("prior", "realnvp")}),
    "extra_likelihoods": ("vaezoo-extra-likelihoods", "vaezoo_extra_likelihoods", {("likelihood", "student_t")}),
}

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(module) is None for _, module, _ in PACKAGES.values()),
    reason="plugin packages not installed: pip install ./plugins/vaezoo-flows ./plugins/vaezoo-extra-likelihoods",
)


@pytest.fixture(autouse=True)
def _with_plugins(_isolated_plugins, monkeypatch):  # after conftest's isolation, which empties VAEZOO_PLUGINS
    monkeypatch.setenv("VAEZOO_PLUGINS", ",".join(PACKAGES))
    reset_registry()


def test_packaging_entry_point_and_dependencies():
    for ep_name, (dist, module, _) in PACKAGES.items():
        meta = importlib.metadata.metadata(dist)
        assert meta["Requires-Python"] == ">=3.10"
        requires = {r.split(">")[0].split("=")[0].split("<")[0].split(";")[0].strip() for r in importlib.metadata.requires(dist) or []}
        assert requires == {"vaezoo", "torch"}, f"{dist} depends on {requires}; only vaezoo and torch are allowed"
        eps = [ep for ep in importlib.metadata.distribution(dist).entry_points if ep.group == "vaezoo"]
        assert [(ep.name, ep.value) for ep in eps] == [(ep_name, f"{module}.plugin")]
        assert (ROOT / "plugins" / dist / "pyproject.toml").is_file()
        assert (ROOT / "plugins" / dist / "README.md").is_file()


def test_loading_the_plugins_is_cheap():
    # The plugin modules register "module:attr" strings: torch and the implementations load on first use.
    code = (
        "import sys, vaezoo_flows.plugin, vaezoo_extra_likelihoods.plugin\n"
        "print([m for m in ('torch', 'vaezoo_flows.realnvp', 'vaezoo_extra_likelihoods.student_t') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_discovered_with_their_distributions_and_no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginWarning)
        registry = discover()
    for ep_name, (dist, module, registered) in PACKAGES.items():
        info = next(p for p in registry.plugins if p.name == ep_name)
        assert (info.distribution, info.error) == (dist, None)
        assert info.version == importlib.metadata.version(dist)
        assert set(info.registered) == registered
    assert registry.get("prior", "realnvp").qualified_name == "flows/realnvp"
    assert registry.get("likelihood", "student_t").qualified_name == "extra_likelihoods/student_t"


def test_cli_lists_the_new_components(capsys):
    from vaezoo.cli import main

    assert main(["list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert "realnvp" in listed["prior"] and "student_t" in listed["likelihood"]
    assert main(["plugins", "--json"]) == 0
    plugins = {p["name"]: p for p in json.loads(capsys.readouterr().out)["plugins"]}
    assert plugins["flows"]["distribution"] == "vaezoo-flows" and plugins["flows"]["errors"] == []
    assert "prior:realnvp" in plugins["flows"]["registered"]
    assert "likelihood:student_t" in plugins["extra_likelihoods"]["registered"]
    assert main(["plugins"]) == 0
    text = capsys.readouterr().out
    assert "flows  [vaezoo-flows" in text and "realnvp" in text


def test_plugin_components_pass_the_conformance_checks():
    assert check_plugin("flows", params={"realnvp": {"hidden": 16}}) == [("prior", "realnvp")]
    assert check_plugin("extra_likelihoods") == [("likelihood", "student_t")]
    for latent_dim in (1, 3):
        check_prior("realnvp", latent_dim=latent_dim, layers=2, hidden=8)
    for params in ({"df": 1.0}, {"df": 3.0, "learn_df": True}, {"df": None}, {"df": 4.0, "min_log_scale": -2.0}):
        check_likelihood("student_t", data_shape=(1, 4, 4), **params)


def test_plugin_components_build_a_model_with_monte_carlo_kl():
    torch.manual_seed(0)
    model = vaezoo.build_model({
        "data_shape": [6], "latent_dim": 2,
        "encoder": {"name": "mlp", "hidden": [8]}, "decoder": {"name": "mlp", "hidden": [8]},
        "prior": {"name": "realnvp", "layers": 2, "hidden": 8}, "likelihood": {"name": "student_t", "df": None},
    })
    assert model.likelihood.param_shape((6,)) == (18,)
    assert not model._analytic_kl(model.encode(torch.rand(2, 6)), model.prior.distribution())
    terms = model.elbo(torch.rand(5, 6), num_samples=3)
    assert terms["loss"].shape == (5,) and torch.isfinite(terms["loss"]).all()
    terms["loss"].mean().backward()
    assert model.sources["prior"]["distribution"] == "vaezoo-flows"
    assert model.sources["likelihood"]["plugin"] == "extra_likelihoods"


def test_config_trains_end_to_end_through_the_cli(tmp_path, capsys):
    from vaezoo.cli import main

    out = tmp_path / "run"
    status = main([
        "train", str(CONFIG), "--out", str(out),
        "train.epochs=1", "train.device=cpu", "data.limit=200", "eval.num_samples=2",
        "log.progress=false", "log.images=false", "log.tensorboard=false",
    ])
    assert status == 0, capsys.readouterr().err
    model = vaezoo.from_pretrained(out / "model")
    assert type(model.prior).__module__ == "vaezoo_flows.realnvp"
    assert type(model.likelihood).__module__ == "vaezoo_extra_likelihoods.student_t"
    saved = json.loads((out / "model" / "config.json").read_text())
    assert saved["components"]["prior"]["distribution"] == "vaezoo-flows"
    assert saved["components"]["likelihood"]["distribution"] == "vaezoo-extra-likelihoods"
    assert torch.isfinite(model.elbo(torch.rand(3, *model.data_shape))["elbo"]).all()
