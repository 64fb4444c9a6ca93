"""The real plugin packages in plugins/, once installed (CI: pip install ./plugins/*).

When they are not installed every test here is skipped on a developer machine, but FAILS
under CI (the ``CI`` environment variable set, as GitHub Actions and most CI services do),
so a broken plugin install cannot pass silently. Checks their packaging (entry points,
dependencies, package data), discovery and listing through the CLI, the conformance checks
of ``vaezoo.testing`` on every component they add, the pretrained zoo entry that
vaezoo-flows ships (sha256, size, parameters and recorded check metrics reproduced from the
shipped file), and one tiny end-to-end training run of the config that uses them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import vaezoo
from vaezoo.plugins import PluginWarning, discover
from vaezoo.registry import get_registry, reset_registry
from vaezoo.testing import check_likelihood, check_plugin, check_prior
from vaezoo.zoo.api import download, get_entry
from vaezoo.zoo.entry import PretrainedEntry
from vaezoo.zoo.errors import ChecksumError
from vaezoo.zoo.metrics import check_mismatches, reproduce_check

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "digits_flow_studentt.yaml"
PACKAGES = {  # entry-point name -> (distribution, module, what it registers)
    "flows": ("vaezoo-flows", "vaezoo_flows", {("prior", "realnvp"), ("pretrained", "realnvp-bernoulli.digits")}),
    "extra_likelihoods": ("vaezoo-extra-likelihoods", "vaezoo_extra_likelihoods", {("likelihood", "student_t")}),
    "vq": ("vaezoo-vq", "vaezoo_vq", {("architecture", "vqvae"), ("objective", "vq"), ("pretrained", "vqvae.fashion_mnist")}),  # its own tests: tests/test_vq.py
}

ZOO_ENTRY = "realnvp-bernoulli.digits"  # shipped by vaezoo-flows
INSTALL_HINT = "pip install ./plugins/vaezoo-flows ./plugins/vaezoo-extra-likelihoods ./plugins/vaezoo-vq"


def in_ci(environ=os.environ) -> bool:
    """True under CI: the ``CI`` variable is set to anything but empty/0/false/no."""
    return environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_packages() -> list[str]:
    return [dist for dist, module, _ in PACKAGES.values() if importlib.util.find_spec(module) is None]


def require_packages(missing: list[str], environ=os.environ) -> None:
    """Fail (under CI) or skip (elsewhere) when plugin packages are missing."""
    if not missing:
        return
    message = f"plugin packages not installed: {', '.join(missing)} ({INSTALL_HINT})"
    if in_ci(environ):
        pytest.fail(f"{message}; under CI they must be installed, so this fails instead of skipping", pytrace=False)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _with_plugins(_isolated_plugins, monkeypatch):  # after conftest's isolation, which empties VAEZOO_PLUGINS
    require_packages(missing_packages())
    monkeypatch.setenv("VAEZOO_PLUGINS", ",".join(PACKAGES))
    reset_registry()


def test_missing_packages_fail_under_ci_and_skip_elsewhere():
    require_packages([])  # nothing missing: nothing happens
    with pytest.raises(pytest.fail.Exception, match="vaezoo-flows.*under CI"):
        require_packages(["vaezoo-flows"], {"CI": "true"})
    with pytest.raises(pytest.fail.Exception):
        require_packages(["vaezoo-flows"], {"CI": "1"})
    for environ in ({}, {"CI": ""}, {"CI": "false"}, {"CI": "0"}):
        with pytest.raises(pytest.skip.Exception, match="vaezoo-flows"):
            require_packages(["vaezoo-flows"], environ)


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
        "import sys, vaezoo_flows.plugin, vaezoo_extra_likelihoods.plugin, vaezoo_vq.plugin\n"
        "print([m for m in ('torch', 'vaezoo_flows.realnvp', 'vaezoo_extra_likelihoods.student_t', 'vaezoo_vq.model')"
        " if m in sys.modules])\n"
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
    assert "vqvae" in listed["architecture"] and "vq" in listed["objective"]
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
        "log.progress=false", "log.images=false", "log.loggers=[jsonl]",
    ])
    assert status == 0, capsys.readouterr().err
    model = vaezoo.from_pretrained(out / "model")
    assert type(model.prior).__module__ == "vaezoo_flows.realnvp"
    assert type(model.likelihood).__module__ == "vaezoo_extra_likelihoods.student_t"
    saved = json.loads((out / "model" / "config.json").read_text())
    assert saved["components"]["prior"]["distribution"] == "vaezoo-flows"
    assert saved["components"]["likelihood"]["distribution"] == "vaezoo-extra-likelihoods"
    assert torch.isfinite(model.elbo(torch.rand(3, *model.data_shape))["elbo"]).all()


# -- the pretrained zoo entry shipped by vaezoo-flows ----------------------------------------------


def test_flows_registers_its_zoo_entry():
    assert ZOO_ENTRY in vaezoo.list_pretrained()
    ((_, source),) = get_registry().pretrained[ZOO_ENTRY]
    assert (source.plugin, source.distribution) == ("flows", "vaezoo-flows")
    info = next(p for p in get_registry().plugins if p.name == "flows")
    assert ("pretrained", ZOO_ENTRY) in info.registered
    entry = get_entry(ZOO_ENTRY)
    assert entry.weights == f"package://vaezoo_flows/weights/{ZOO_ENTRY}.safetensors"
    assert entry.config["prior"]["name"] == "realnvp" and entry.config["likelihood"]["name"] == "bernoulli"
    recipe = entry.meta["recipe"]
    assert recipe == f"configs/zoo/{ZOO_ENTRY}.yaml" and (ROOT / recipe).is_file()
    from omegaconf import OmegaConf

    trained = OmegaConf.to_container(OmegaConf.load(ROOT / recipe), resolve=True)
    for key, value in trained["model"].items():  # the recipe trained this very model
        assert entry.config[key] == value, f"model.{key}: the recipe says {value!r}, the entry {entry.config[key]!r}"
    assert entry.meta["dataset"]["name"] == trained["data"]["name"] == "digits"
    assert {"epochs", "wall_time_s"} <= set(entry.meta["training"])
    assert entry.metrics["num_samples"] >= 1000


def test_flows_zoo_entry_ships_as_package_data():
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    import vaezoo_flows

    package = Path(vaezoo_flows.__file__).parent
    catalogue = json.loads((package / "catalogue.json").read_text(encoding="utf-8"))
    shipped = {p.name for p in (package / "weights").glob("*.safetensors")}
    assert shipped == {f"{name}.safetensors" for name in catalogue["entries"]}, "every weights file belongs to an entry"
    project = tomllib.loads((ROOT / "plugins" / "vaezoo-flows" / "pyproject.toml").read_text(encoding="utf-8"))
    data = project["tool"]["setuptools"]["package-data"]["vaezoo_flows"]
    assert {"catalogue.json", "weights/*.safetensors"} <= set(data), "the catalogue and the weights must be in the wheel"


def test_flows_zoo_entry_loads_verified_and_reproduces_its_check():
    entry = get_entry(ZOO_ENTRY)
    path = download(entry, progress=False)  # packaged: read in place, sha256 checked
    import vaezoo_flows

    assert path.resolve() == (Path(vaezoo_flows.__file__).parent / "weights" / f"{ZOO_ENTRY}.safetensors").resolve()
    blob = path.read_bytes()
    assert hashlib.sha256(blob).hexdigest() == entry.sha256, "sha256 of the shipped file"
    assert len(blob) == entry.meta["file_size"], "meta.file_size"
    model = vaezoo.from_pretrained(ZOO_ENTRY)
    assert isinstance(model, vaezoo.VAE) and not model.training and model.pretrained == entry
    assert type(model.prior).__module__ == "vaezoo_flows.realnvp"
    assert sum(p.numel() for p in model.parameters()) == entry.meta["num_params"], "meta.num_params"
    measured = reproduce_check(model, entry.check, entry.data_config)
    problems = check_mismatches(entry.check, measured)
    assert not problems, f"{ZOO_ENTRY}: check not reproduced: {'; '.join(problems)}"


def test_flows_zoo_entry_with_a_wrong_digest_is_refused():
    fields = get_entry(ZOO_ENTRY).to_dict()
    fields["sha256"] = ("0" if fields["sha256"][0] != "0" else "1") + fields["sha256"][1:]
    with pytest.raises(ChecksumError):
        download(PretrainedEntry.from_mapping(fields), progress=False)


def test_the_documented_zoo_test_passes_for_the_flows_entry():
    """docs/plugins.md step 7's zoo test, as written but for vaezoo_flows, whose entry is built on
    the built-in mlp nets and bernoulli likelihood."""
    import vaezoo_flows.plugin
    from test_docs_plugins import tutorial_files

    from vaezoo.testing import isolated_registry

    source = tutorial_files()["tests/test_hello.py"].replace("vaezoo_hello", "vaezoo_flows")
    namespace: dict = {}
    exec(compile(source, "docs/plugins.md (tests/test_hello.py for vaezoo_flows)", "exec"), namespace)
    with isolated_registry(vaezoo_flows.plugin, builtin_zoo=False):
        assert vaezoo.list_pretrained() == [ZOO_ENTRY]
        assert get_entry(ZOO_ENTRY).config["encoder"]["name"] == "mlp"
    namespace["test_published_models_reproduce_their_check"]()
