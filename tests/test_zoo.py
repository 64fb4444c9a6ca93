"""The model zoo: every entry's file, config and metrics are checked, like torchvision's weights.

For each registered entry (built-in catalogue) and for a tiny entry published here into a
temporary package and registered by a test plugin: recompute sha256, file size and number
of parameters from the shipped file, load it strictly, and reproduce its recorded
``check`` metrics (same data, seed, batch size) within ``CHECK_ATOL + CHECK_RTOL*|x|``
nats. Data must be available offline: digits always; other datasets (Fashion-MNIST from
/usr/share/datasets/fashion-mnist or the vaezoo data cache) or the check is skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

import pytest

from vaezoo.plugins import PluginWarning
import torch

import vaezoo
from vaezoo.errors import DataError, VaezooError
from vaezoo.hookspecs import hookimpl
from vaezoo.plugins import discover
from vaezoo.registry import use_registry
from vaezoo.zoo import catalogue, docs, publish
from vaezoo.zoo import card as model_card
from vaezoo.zoo.api import download, get_entry, list_pretrained, load_pretrained
from vaezoo.zoo.cli import add_zoo_parser, run_zoo
from vaezoo.zoo.entry import PretrainedEntry, missing_card_fields
from vaezoo.zoo.errors import ChecksumError, InvalidEntryError, UnknownModelError, ZooError
from vaezoo.zoo.metrics import CHECK_ATOL, CHECK_RTOL, check_mismatches, reproduce_check

REPO = Path(__file__).resolve().parent.parent
PACKAGED_WEIGHTS = Path(vaezoo.__file__).resolve().parent / "zoo" / "weights"
BUDGET_BYTES = 30 * 1024 * 1024
SLOW_SECONDS = 10.0
TINY = "tiny-mlp.digits"
TINY_PACKAGE = "vaezoo_zoo_testpkg"
TINY_CARD = {"description": "A 2-d digits VAE for the tests.", "citation": "Kingma & Welling, 2014. Auto-Encoding Variational Bayes"}
TINY_REFERENCE = {"nll": 30.0, "model": "an imagined baseline", "source": "tests/test_zoo.py"}


# -- the check every entry must pass ---------------------------------------------------------
def verify_entry(entry: PretrainedEntry) -> None:
    """File digest/size, strict load, parameter count, and the recorded check metrics."""
    path = download(entry, progress=False)
    blob = path.read_bytes()
    assert hashlib.sha256(blob).hexdigest() == entry.sha256, "sha256 of the shipped file"
    assert len(blob) == entry.meta["file_size"], "meta.file_size"
    model = load_pretrained(entry.name, progress=False)
    assert isinstance(model, vaezoo.Model) and not model.training
    assert model.config["architecture"] == entry.config.get("architecture", "vae")
    assert model.pretrained == entry
    assert sum(p.numel() for p in model.parameters()) == entry.meta["num_params"], "meta.num_params"
    from vaezoo.model import model_config
    from vaezoo.serialization import read_metadata

    embedded = read_metadata(path).get("config")
    if embedded is not None:
        assert model_config(json.loads(embedded)) == model_config(entry.config), "config inside the weights file"
    try:
        measured = reproduce_check(model, entry.check, entry.data_config)
    except DataError as exc:
        if entry.meta["dataset"]["name"] == "digits":  # bundled with scikit-learn: always available
            raise
        pytest.skip(f"{entry.meta['dataset']['name']} is not available offline: {exc}")
    problems = check_mismatches(entry.check, measured)
    assert not problems, f"{entry.name}: check not reproduced: {'; '.join(problems)}"


def _builtin_params() -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        registry = discover(entry_points=False)
    params = []
    with use_registry(registry):
        for name in list_pretrained():
            seconds = get_entry(name).check.get("seconds", 0)
            marks = [pytest.mark.slow] if seconds > SLOW_SECONDS else []
            params.append(pytest.param(name, marks=marks, id=name))
    return params


BUILTIN = _builtin_params()


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_entry_reproduces(name):
    verify_entry(get_entry(name))


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_entry_is_documented(name):
    entry = get_entry(name)
    recipe = entry.meta.get("recipe")
    assert recipe and recipe.startswith("configs/zoo/") and (REPO / recipe).is_file(), f"meta.recipe {recipe!r}"
    assert {"epochs", "wall_time_s"} <= set(entry.meta.get("training", {})), "meta.training"
    assert missing_card_fields(entry.meta) == [], f"model card incomplete: {missing_card_fields(entry.meta)}"
    assert entry.meta["license"] == model_card.project_license()
    assert entry.weights == f"package://vaezoo.zoo/weights/{name}.safetensors"
    assert entry.metrics["num_samples"] >= 1000, "the NLL of a built-in entry uses K >= 1000"


def test_packaged_weights_fit_the_budget():
    files = list(PACKAGED_WEIGHTS.glob("*")) if PACKAGED_WEIGHTS.is_dir() else []
    total = sum(p.stat().st_size for p in files if p.is_file())
    assert total < BUDGET_BYTES, f"packaged weights total {total / 2**20:.1f} MB; the budget is 30 MB"


def test_every_packaged_file_belongs_to_an_entry():
    entries = catalogue.read_catalogue()
    expected = {f"{name}.safetensors" for name, e in entries.items() if e["weights"].startswith("package://vaezoo.zoo/")}
    present = {p.name for p in PACKAGED_WEIGHTS.glob("*.safetensors")} if PACKAGED_WEIGHTS.is_dir() else set()
    assert present == expected


def test_catalogue_file_is_canonical():
    path = catalogue.catalogue_path()
    assert path.read_text(encoding="utf-8") == catalogue.dumps(catalogue.read_catalogue())


def test_docs_table_is_up_to_date():
    path = docs.default_docs_path()
    assert path.is_file()
    assert not docs.update(path, check=True), "docs/zoo.md is out of date: run python -m vaezoo.zoo.docs"


# -- a tiny entry, published here and registered by a plugin ---------------------------------------
class ZooPlugin:
    """A test plugin shipping zoo entries (objects or mappings)."""

    def __init__(self, *entries):
        self.entries = entries

    @hookimpl
    def vaezoo_register_pretrained(self, register):
        for entry in self.entries:
            register(entry["name"] if isinstance(entry, dict) else entry.name, entry)


def registry_with(*plugins):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return discover(entry_points=False, plugins=list(plugins))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """``(entry, original model, tmp folder)``: a 2-d digits VAE published into package vaezoo_zoo_testpkg."""
    root = tmp_path_factory.mktemp("zoo")
    pkg = root / "site" / TINY_PACKAGE
    (pkg / "weights").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    run = root / "run"
    recipe = root / "configs" / "zoo" / f"{TINY}.yaml"
    recipe.parent.mkdir(parents=True)
    recipe.write_text("model: {latent_dim: 2}\n")
    with pytest.MonkeyPatch.context() as mp, use_registry(registry_with()):
        mp.syspath_prepend(str(root / "site"))
        torch.manual_seed(0)
        model = vaezoo.build_model({"data_shape": [1, 8, 8], "latent_dim": 2, "encoder": {"name": "mlp", "hidden": [16]},
                                    "decoder": {"name": "mlp", "hidden": [16]}, "prior": "normal", "likelihood": "bernoulli"})
        model.save_pretrained(str(run / "model"))
        (run / "config.yaml").write_text("data:\n  name: digits\n  binarize: dynamic\ntrain:\n  num_threads: 2\n")
        (run / "metrics.jsonl").write_text(
            '{"kind": "epoch", "epoch": 1, "time/epoch": 1.5}\n{"kind": "epoch", "epoch": 2, "time/epoch": 2.0}\n'
        )
        entry = publish.publish(run, name=TINY, recipe=str(recipe), dtype="float16", num_samples=20, check_first=50,
                                check_num_samples=10, convergence_num_samples=4, weights_dir=pkg / "weights",
                                catalogue=root / "catalogue.json", description=TINY_CARD["description"],
                                citation=TINY_CARD["citation"], reference=TINY_REFERENCE, echo=lambda msg: None)
        yield entry, model, root


@pytest.fixture
def tiny_zoo(tiny, monkeypatch):
    entry, _, root = tiny
    monkeypatch.syspath_prepend(str(root / "site"))
    monkeypatch.setenv("VAEZOO_HOME", str(root / "home"))
    with use_registry(registry_with(("zooplugin", ZooPlugin(entry)))):
        yield entry


def test_publish_records_everything(tiny):
    entry, _, root = tiny
    assert entry.weights == f"package://{TINY_PACKAGE}/weights/{TINY}.safetensors"
    stored = catalogue.read_catalogue(root / "catalogue.json")
    assert PretrainedEntry.from_mapping(stored[TINY], name=TINY) == entry
    shipped = root / "site" / TINY_PACKAGE / "weights" / f"{TINY}.safetensors"
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == entry.sha256
    assert [p.name for p in shipped.parent.iterdir()] == [shipped.name], "no temporary files left"
    meta = entry.meta
    assert meta["dtype"] == "float16" and meta["num_params"] > 0 and meta["file_size"] == shipped.stat().st_size
    assert meta["dataset"]["data"]["binarize"] == "static" and "dynamic" in meta["dataset"]["preprocessing"]
    assert meta["dataset"]["data"]["root"] is None and meta["dataset"]["num_examples"] == 359
    assert meta["metrics"]["num_samples"] == 20 and meta["metrics"]["num_examples"] == 359
    assert meta["check"]["first"] == 50 and meta["check"]["num_samples"] == 10
    assert meta["training"] == {"epochs": 2, "wall_time_s": 3.5, "threads": 2, "hardware": model_card.describe_hardware()}
    assert meta["recipe"].endswith(f"configs/zoo/{TINY}.yaml")
    # bits/dim of a discrete likelihood: nll / (D ln 2)
    assert meta["metrics"]["bits_per_dim"] == pytest.approx(meta["metrics"]["nll"] / (64 * 0.6931471805599453))
    # the model card: flags, the project's license by default, the version, threads and hardware by themselves
    assert {k: meta[k] for k in TINY_CARD} == TINY_CARD and meta["license"] == "MIT" == model_card.project_license()
    assert meta["reference"] == TINY_REFERENCE and meta["vaezoo_version"] == vaezoo.__version__
    assert missing_card_fields(meta) == []


def test_publish_records_the_standard_error_and_the_convergence_check(tiny, monkeypatch):
    """nll_se and metrics.convergence are what the one measurement gives on the shipped file."""
    from vaezoo.data import load_data
    from vaezoo.measurement import measure, num_bins_of
    from vaezoo.serialization import load_weights
    from vaezoo.zoo.metrics import split_tensor

    entry, _, root = tiny
    m = entry.metrics
    shipped = vaezoo.build_model(entry.config)
    load_weights(shipped, root / "site" / TINY_PACKAGE / "weights" / f"{TINY}.safetensors")
    splits = load_data(entry.data_config, likelihood=shipped.likelihood)
    x = split_tensor(splits.test)
    conv = m["convergence"]
    assert conv["num_samples"] == 4 and conv["seed"] == m["seed"] + 1
    main = measure(shipped, x, num_samples=m["num_samples"], seed=m["seed"], num_bins=num_bins_of(splits))
    again = measure(shipped, x, num_samples=4, seed=conv["seed"], num_bins=num_bins_of(splits))
    assert m["nll"] == pytest.approx(main["nll"], abs=1e-9) and conv["nll"] == pytest.approx(again["nll"], abs=1e-9)
    assert m["nll_se"] == pytest.approx(main["nll_se"], rel=1e-9)
    assert 0 < m["nll_se"] < m["nll"] / 10
    shipped.eval()
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(m["seed"])  # the per-example values behind the mean, batch by batch as measure draws them
        values = []
        for start in range(0, len(x), 256):
            shipped.elbo(x[start:start + 256])
            values.append(-shipped.log_likelihood(x[start:start + 256], m["num_samples"]).double())
    values = torch.cat(values)
    assert values.mean().item() == pytest.approx(m["nll"], abs=1e-6)
    assert m["nll_se"] == pytest.approx(float(values.std() / len(values) ** 0.5), rel=1e-6)


def test_publish_checks_the_card_before_any_work(tiny, tmp_path):
    _, _, root = tiny
    base = dict(name=TINY, recipe=None, weights_dir=tmp_path / "w", catalogue=tmp_path / "c.json", echo=lambda m: None)
    cases = [
        (dict(license="my license"), "--license"),
        (dict(description="two\nlines"), "--description"),
        (dict(description="x" * 301), "--description"),
        (dict(citation=""), "--citation"),
        (dict(reference={"nll": 1.0, "model": None, "source": None}), "--reference-nll, --reference-model"),
        (dict(training={"hardware": "/home/me/cpu"}), "--hardware"),
        (dict(training={"threads": 0}), "--threads"),
        (dict(convergence_num_samples=0), "--convergence-num-samples"),
    ]
    for changes, flag in cases:
        with pytest.raises(ZooError) as info:
            publish.publish(root / "run", **base, **changes)
        message = str(info.value)
        assert message.startswith(flag) and "\n" not in message, message
    assert not (tmp_path / "w").exists() and not (tmp_path / "c.json").exists(), "nothing written"


def test_publish_command_line_takes_the_card(tiny, tmp_path, capsys):
    _, _, root = tiny
    with use_registry(registry_with()):
        code = publish.main([str(root / "run"), "--name", TINY, "--num-samples", "3", "--convergence-num-samples", "2",
                             "--check-first", "10", "--check-num-samples", "2", "--weights-dir", str(tmp_path / "w"),
                             "--catalogue", str(tmp_path / "c.json"), "--description", "Tiny.", "--citation", "Nobody, 2024",
                             "--license", "Apache-2.0", "--reference-nll", "25.5", "--reference-model", "m",
                             "--reference-source", "s", "--threads", "3", "--hardware", "a test CPU, 1 CPUs"])
    assert code == 0, capsys.readouterr().err
    meta = catalogue.read_catalogue(tmp_path / "c.json")[TINY]["meta"]
    assert (meta["description"], meta["citation"], meta["license"]) == ("Tiny.", "Nobody, 2024", "Apache-2.0")
    assert meta["reference"] == {"nll": 25.5, "model": "m", "source": "s"}
    assert meta["training"]["threads"] == 3 and meta["training"]["hardware"] == "a test CPU, 1 CPUs"
    assert meta["metrics"]["convergence"]["num_samples"] == 2


def test_tiny_entry_verifies(tiny_zoo):
    assert TINY in list_pretrained() and list_pretrained("tiny-*") == [TINY] and list_pretrained("x*") == []
    assert vaezoo.list_pretrained("tiny-*") == [TINY]
    verify_entry(get_entry(TINY))


def test_check_detects_wrong_metrics(tiny_zoo):
    entry = tiny_zoo
    model = load_pretrained(entry, progress=False)
    measured = reproduce_check(model, entry.check, entry.data_config)
    assert check_mismatches(entry.check, measured) == []
    off = dict(entry.check, nll=entry.check["nll"] + 2 * CHECK_ATOL + 2 * CHECK_RTOL * abs(entry.check["nll"]))
    assert any(p.startswith("nll") for p in check_mismatches(off, measured))


def test_from_pretrained_by_name_loads_the_shipped_weights(tiny, tiny_zoo):
    _, original, _ = tiny
    model = vaezoo.from_pretrained(TINY, progress=False)
    assert model.pretrained.name == TINY and model.pretrained.metrics["nll"] > 0
    for key, value in original.state_dict().items():  # float16 on disk, float32 in memory
        assert torch.equal(model.state_dict()[key], value.half().float()), key


def test_entry_registered_as_a_mapping(tiny, monkeypatch):
    entry, _, root = tiny
    monkeypatch.syspath_prepend(str(root / "site"))
    fields = entry.to_dict()
    del fields["name"]  # the registered name fills it
    plugin = ZooPlugin(dict(fields, name=TINY))
    with use_registry(registry_with(("mapplugin", plugin))):
        assert get_entry(TINY) == entry


def test_duplicate_names_name_both_plugins(tiny):
    entry = tiny[0]
    with use_registry(registry_with(("first_plugin", ZooPlugin(entry)), ("second_plugin", ZooPlugin(entry)))):
        assert list_pretrained("tiny-*") == [TINY]
        with pytest.raises(ZooError, match="more than one plugin") as info:
            get_entry(TINY)
    assert "first_plugin" in str(info.value) and "second_plugin" in str(info.value)


def test_same_plugin_registering_twice(tiny):
    entry = tiny[0]
    with use_registry(registry_with(("twice", ZooPlugin(entry, entry)))):
        with pytest.raises(ZooError, match="registered 2 times by plugin 'twice'"):
            get_entry(TINY)


def test_unknown_name_suggests(tiny_zoo):
    with pytest.raises(UnknownModelError) as info:
        get_entry("tiny-mlp.digit")
    message = str(info.value)
    assert f"Did you mean {TINY!r}" in message and "Available" in message
    with pytest.raises(UnknownModelError):
        vaezoo.from_pretrained("nonexistent.model")


def test_invalid_plugin_entry_names_the_plugin(tiny):
    bad = dict(tiny[0].to_dict(), sha256="abc")
    with pytest.warns(PluginWarning, match=r"vaezoo plugin 'badplugin' raised in a hook: .*sha256.*badplugin"):
        registry = discover(entry_points=False, plugins=[("badplugin", ZooPlugin(bad))])
    with use_registry(registry):
        with pytest.raises(UnknownModelError):
            get_entry(TINY)  # the plugin was dropped whole at discovery
        assert list_pretrained("tiny-*") == []


def test_corrupted_packaged_weights_are_an_error(tiny, monkeypatch, tmp_path):
    entry, _, root = tiny
    site = tmp_path / "site"
    shutil.copytree(root / "site" / TINY_PACKAGE, site / "zoo_corrupt_pkg")
    target = site / "zoo_corrupt_pkg" / "weights" / f"{TINY}.safetensors"
    target.write_bytes(target.read_bytes()[:-1] + b"\0")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("VAEZOO_HOME", str(tmp_path / "home"))
    corrupt = PretrainedEntry.from_mapping(dict(entry.to_dict(), weights=f"package://zoo_corrupt_pkg/weights/{TINY}.safetensors"))
    with pytest.raises(ChecksumError, match="reinstall") as info:
        load_pretrained(corrupt, progress=False)
    assert entry.sha256 in str(info.value)
    assert not (tmp_path / "home").exists(), "packaged weights never touch the cache"
    missing = PretrainedEntry.from_mapping(dict(entry.to_dict(), weights="package://zoo_corrupt_pkg/weights/nope.safetensors"))
    with pytest.raises(ZooError, match="missing from the installed package"):
        download(missing)
    absent = PretrainedEntry.from_mapping(dict(entry.to_dict(), weights="package://no_such_pkg_xyz/w.safetensors"))
    with pytest.raises(ZooError, match="cannot be imported"):
        download(absent)


def test_file_url_entry_goes_through_the_cache(tiny, monkeypatch, tmp_path):
    entry, _, root = tiny
    hosted = tmp_path / "hosted.safetensors"
    shutil.copyfile(root / "site" / TINY_PACKAGE / "weights" / f"{TINY}.safetensors", hosted)
    monkeypatch.setenv("VAEZOO_HOME", str(tmp_path / "home"))
    remote = PretrainedEntry.from_mapping(dict(entry.to_dict(), weights=hosted.as_uri()))
    model = load_pretrained(remote, progress=False)
    cached = list((tmp_path / "home" / "weights").iterdir())
    assert [p.name for p in cached] == [f"{TINY}-{entry.sha256[:12]}.safetensors"]
    hosted.unlink()  # cached: no source needed any more
    assert load_pretrained(remote, progress=False).pretrained == remote
    assert model.pretrained == remote


def test_publish_hosted_weights(tiny, tmp_path, monkeypatch):
    _, _, root = tiny
    monkeypatch.setenv("VAEZOO_HOME", str(tmp_path / "home"))
    url = (tmp_path / "upload" / f"{TINY}.safetensors").as_uri()
    with use_registry(registry_with()):
        entry = publish.publish(root / "run", name=TINY, recipe=None, num_samples=5, check_first=10, check_num_samples=5,
                                convergence_num_samples=2, weights_dir=tmp_path / "upload", weights_url=url, catalogue=tmp_path / "c.json",
                                echo=lambda msg: None)
        assert entry.weights == url and "recipe" not in entry.meta
        assert load_pretrained(entry, progress=False).pretrained == entry
    assert (tmp_path / "home" / "weights" / f"{TINY}-{entry.sha256[:12]}.safetensors").is_file()


# -- entry validation -----------------------------------------------------------------------------
def _fields(tiny_entry, **changes):
    fields = tiny_entry.to_dict()
    for path, value in changes.items():
        target = fields
        *parents, last = path.split("__")
        for p in parents:
            target = target[p]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
    return fields


@pytest.mark.parametrize("changes, field", [
    ({"name": "NoDot"}, "name"),
    ({"name": "a.b.c"}, "name"),
    ({"sha256": "12" * 31}, "sha256"),
    ({"sha256": "g" * 64}, "sha256"),
    ({"weights": "ftp://example.org/w.safetensors"}, "weights"),
    ({"weights": "package://vaezoo.zoo/../secret"}, "weights"),
    ({"weights": "package://not a package/w"}, "weights"),
    ({"weights": "file://relative/w"}, "weights"),
    ({"weights": "https:///nohost"}, "weights"),
    ({"config__likelihood": KeyError}, "config.likelihood"),
    ({"meta__check": KeyError}, "meta.check"),
    ({"meta__check__first": 0}, "meta.check.first"),
    ({"meta__metrics__nll": float("nan")}, "meta"),
    ({"meta__metrics__bits_per_dim": "low"}, "meta.metrics.bits_per_dim"),
    ({"meta__dataset__data": KeyError}, "meta.dataset.data"),
    ({"meta__num_params": True}, "meta.num_params"),
    ({"meta__training": {"epochs": -1}}, "meta.training.epochs"),
    ({"meta__training__threads": 0}, "meta.training.threads"),
    ({"meta__training__hardware": "/proc/cpuinfo"}, "meta.training.hardware"),
    ({"meta__training__hardware": "two\nlines"}, "meta.training.hardware"),
    ({"meta__description": "x" * 301}, "meta.description"),
    ({"meta__description": ""}, "meta.description"),
    ({"meta__license": "my own licence"}, "meta.license"),
    ({"meta__citation": 2014}, "meta.citation"),
    ({"meta__vaezoo_version": "latest"}, "meta.vaezoo_version"),
    ({"meta__metrics__nll_se": -0.1}, "meta.metrics.nll_se"),
    ({"meta__metrics__convergence__seed": KeyError}, "meta.metrics.convergence.seed"),
    ({"meta__metrics__convergence__num_samples": 0}, "meta.metrics.convergence.num_samples"),
    ({"meta__reference__source": KeyError}, "meta.reference.source"),
    ({"meta__reference__nll": "228.7"}, "meta.reference.nll"),
    ({"colour": "blue"}, "colour"),
])
def test_entry_validation_names_entry_and_field(tiny, changes, field):
    fields = _fields(tiny[0], **changes)
    with pytest.raises(InvalidEntryError) as info:
        PretrainedEntry.from_mapping(fields)
    message = str(info.value)
    assert "\n" not in message and f": {field}" in message and repr(fields.get("name")) in message, message


def test_entry_is_frozen_and_independent(tiny):
    entry = tiny[0]
    fields = entry.to_dict()
    again = PretrainedEntry.from_mapping(fields)
    assert again == entry and hash(again) == hash(entry)
    fields["meta"]["metrics"]["nll"] = 0.0
    assert again.metrics["nll"] == entry.metrics["nll"]
    with pytest.raises(AttributeError):
        entry.name = "other.name"
    upper = PretrainedEntry.from_mapping(dict(entry.to_dict(), sha256=entry.sha256.upper()))
    assert upper.sha256 == entry.sha256
    with pytest.raises(InvalidEntryError, match="registered as"):
        PretrainedEntry.from_mapping(entry.to_dict(), name="other.name")


# -- publishing errors -------------------------------------------------------------------------
def test_publish_user_errors(tiny, tmp_path, capsys):
    _, model, root = tiny
    with pytest.raises(ZooError, match="architecture.tag"):
        publish.publish(root / "run", name="Bad Name", recipe=None)
    with pytest.raises(ZooError, match="--recipe"):
        publish.publish(root / "run", name=TINY, recipe=str(tmp_path / "nope.yaml"))
    bare = tmp_path / "bare"
    shutil.copytree(root / "run" / "model", bare)
    with use_registry(registry_with()), pytest.raises(ZooError, match="--data NAME"):
        publish.publish(bare, name=TINY, recipe=None, weights_dir=tmp_path / "w", catalogue=tmp_path / "c.json")
    with pytest.raises(ZooError, match="--weights-dir"):
        publish.publish(root / "run", name=TINY, recipe=None, weights_url="https://example.org/w.safetensors")
    with pytest.raises(ZooError, match="weights"):
        publish.publish(root / "run", name=TINY, recipe=None, weights_url="ftp://example.org/w", weights_dir=tmp_path)
    assert publish.main([str(tmp_path / "missing"), "--name", TINY]) == 2
    assert "publish: error:" in capsys.readouterr().err


def test_publish_writes_the_weights_only_after_measuring(tiny, tmp_path, monkeypatch):
    """No file in the weights folder while it measures; an interrupted publish leaves none and no catalogue."""
    from vaezoo.zoo import metrics

    _, _, root = tiny
    weights, cat = tmp_path / "w", tmp_path / "c.json"
    stale = weights / ".old.safetensors.somehost-1.abc.tmp"  # what a publish killed long ago left
    weights.mkdir()
    stale.write_bytes(b"x")
    seen = []

    def interrupted(*args, **kwargs):
        seen.append(sorted(p.name for p in weights.iterdir()))
        raise KeyboardInterrupt

    monkeypatch.setattr(metrics, "measure", interrupted)
    with pytest.raises(KeyboardInterrupt):
        publish.publish(root / "run", name=TINY, recipe=None, num_samples=5, weights_dir=weights, catalogue=cat,
                        echo=lambda m: None)
    assert seen == [[stale.name]] and sorted(p.name for p in weights.iterdir()) == [stale.name] and not cat.exists()
    monkeypatch.undo()
    os.utime(stale, (0, 0))  # older than fileio.STALE_SECONDS: removed by the next publish that writes here
    entry = publish.publish(root / "run", name=TINY, recipe=None, num_samples=5, check_first=10, check_num_samples=5,
                            convergence_num_samples=2, weights_dir=weights, catalogue=cat, echo=lambda m: None)
    shipped = weights / f"{TINY}.safetensors"
    assert sorted(p.name for p in weights.iterdir()) == [shipped.name]
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == entry.sha256 and entry.meta["file_size"] == shipped.stat().st_size


def test_publish_refuses_an_unwritable_weights_folder_before_measuring(tiny, tmp_path, monkeypatch):
    from vaezoo.zoo import metrics

    _, _, root = tiny
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")

    def never(*args, **kwargs):
        raise AssertionError("measured although the weights cannot be written")

    monkeypatch.setattr(metrics, "measure", never)
    with pytest.raises(ZooError) as info:
        publish.publish(root / "run", name=TINY, recipe=None, weights_dir=blocker / "w", catalogue=tmp_path / "c.json",
                        echo=lambda m: None)
    assert str(info.value).startswith("--weights-dir") and "\n" not in str(info.value)
    assert blocker.read_text() == "not a folder" and not (tmp_path / "c.json").exists()

# -- command line ----------------------------------------------------------------------------------
def zoo_cli(*argv):
    parser = argparse.ArgumentParser(prog="vaezoo")
    add_zoo_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["zoo", *argv])
    return args.func(args)


def test_cli_list_info_download(tiny_zoo, capsys):
    assert zoo_cli("list") == 0
    out = capsys.readouterr().out
    assert TINY in out and "NLL" in out
    assert zoo_cli("list", "nothing*") == 0 and "no pretrained models" in capsys.readouterr().out
    assert zoo_cli("list", "tiny-*", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["name"] == TINY and rows[0]["source"] == "plugin 'zooplugin'"
    assert rows[0]["unit"] == "binary" and rows[0]["nll_se"] == tiny_zoo.metrics["nll_se"]
    assert zoo_cli("info", TINY) == 0
    out = capsys.readouterr().out
    assert tiny_zoo.sha256 in out and "metrics.nll" in out and "check.first" in out
    card = dict(line.strip().split(":", 1) for line in out.splitlines()[1:8])  # the card comes first
    assert card["description"].strip() == TINY_CARD["description"] and card["citation"].strip() == TINY_CARD["citation"]
    assert card["license"].strip() == "MIT" and "mass on binarized pixels" in card["result"]
    assert f"± {tiny_zoo.metrics['nll_se']:.2f}" in card["result"]
    conv = tiny_zoo.metrics["convergence"]
    assert f"K={conv['num_samples']} (seed {conv['seed']}): {conv['nll']:.2f}" in out
    assert f"{TINY_REFERENCE['nll']:.2f} nats, {TINY_REFERENCE['model']}" in out
    assert "2 threads" in out and model_card.describe_hardware() in out
    assert zoo_cli("info", TINY, "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert PretrainedEntry.from_mapping({k: info[k] for k in ("name", "config", "weights", "sha256", "meta")}) == tiny_zoo
    assert zoo_cli("download", TINY, "--no-progress") == 0
    assert Path(capsys.readouterr().out.strip()).is_file()
    with pytest.raises(VaezooError, match="unknown pretrained model"):
        zoo_cli("info", "nope.nope")
    assert run_zoo(argparse.Namespace()) == 0


# -- docs -------------------------------------------------------------------------------------------
def test_docs_render_a_table(tiny, tmp_path):
    entry = tiny[0]
    table = docs.render_table({entry.name: entry.to_dict()})
    assert f"`{TINY}`" in table and f"{entry.metrics['nll']:.2f}" in table and f"{TINY}.yaml" in table
    assert "### Reproduction" in table and f"{entry.metrics['nll'] - TINY_REFERENCE['nll']:+.2f}" in table
    assert f"{entry.metrics['nll']:.2f} ± {entry.metrics['nll_se']:.2f}" in table
    conv = entry.metrics["convergence"]
    assert f"K={conv['num_samples']}: {conv['nll']:.2f} vs K={entry.metrics['num_samples']}" in table
    without = entry.to_dict()
    del without["meta"]["reference"]
    assert "### Reproduction" not in docs.render_table({entry.name: without})
    page = tmp_path / "zoo.md"
    page.write_text(f"# Zoo\n\n{docs.BEGIN}\nstale\n{docs.END}\n\nprose\n")
    assert docs.update(page) is True
    assert docs.update(page, check=True) is False
    text = page.read_text()
    assert "stale" not in text and text.endswith(f"{docs.END}\n\nprose\n")
    assert docs.main(["--path", str(page), "--check"]) == 0


def test_vaezoo_eval_measures_exactly_as_the_zoo_records(tmp_path, capsys):
    """One measurement: ``vaezoo eval`` with an entry's split, K, seed and batch size gives its check."""
    from vaezoo.cli import main

    entry = get_entry("mlp-bernoulli.digits")
    model = load_pretrained(entry.name, progress=False)
    folder = tmp_path / "m"
    model.save_pretrained(str(folder))
    check, data = entry.check, entry.data_config
    args = ["eval", str(folder), "--json", "--data", data["name"], "--binarize", data["binarize"], "--split", check["split"],
            "--limit", str(check["first"]), "-k", str(check["num_samples"]), "--seed", str(check["seed"]),
            "--batch-size", str(check["batch_size"])]
    assert main(args) == 0
    scores = json.loads(capsys.readouterr().out)
    assert check_mismatches(check, {"neg_elbo": -scores["elbo"], "nll": scores["nll"], "num_examples": scores["num_examples"]}) == []
    assert scores["nll"] == pytest.approx(reproduce_check(model, check, data)["nll"], abs=1e-9)


def test_eval_and_sample_take_zoo_names(tmp_path, capsys):
    from vaezoo.cli import main

    entry = get_entry("mlp-bernoulli.digits")
    check = entry.check
    args = ["--json", "--limit", str(check["first"]), "-k", str(check["num_samples"]), "--seed", str(check["seed"]),
            "--batch-size", str(check["batch_size"])]
    assert main(["eval", entry.name, *args]) == 0  # the entry's own data and preprocessing
    scores = json.loads(capsys.readouterr().out)
    assert check_mismatches(check, {"neg_elbo": -scores["elbo"], "nll": scores["nll"], "num_examples": scores["num_examples"]}) == []
    assert main(["sample", entry.name, "--n", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 0


def test_split_tensor_stacks_a_map_style_dataset():
    from vaezoo.zoo.metrics import split_tensor

    class Streamed:  # no in-memory ``x``: items one by one, as an image folder streams them
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return torch.full((1, 2, 2), float(i)), i

    x = split_tensor(Streamed(), first=3)
    assert x.shape == (3, 1, 2, 2) and x[:, 0, 0, 0].tolist() == [0.0, 1.0, 2.0]
