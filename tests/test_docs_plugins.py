"""docs/plugins.md stays true: every hook is documented, and the tutorial's code runs.

The tutorial's files are the fenced code blocks whose first line is ``# file: <path>``.
They are written to a temporary folder, the package is made visible to
``importlib.metadata`` with the entry points of its ``pyproject.toml``, and then discovered,
checked with ``vaezoo.testing`` and used to build and save a model, and the tutorial's own
tests are run.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path

import pytest
import torch

import vaezoo
import vaezoo.testing
from vaezoo import hookspecs
from vaezoo.plugins import HOOK_NAMES, discover
from vaezoo.testing import check_plugin, registered_plugin

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.S | re.M)
MARK = re.compile(r"^# file: (\S+)\n")


def tutorial_files() -> dict[str, str]:
    files: dict[str, str] = {}
    for _lang, body in FENCE.findall(DOC.read_text()):
        m = MARK.match(body)
        if m:
            assert m.group(1) not in files, f"docs/plugins.md: two blocks for {m.group(1)}"
            files[m.group(1)] = body
    return files


def _load_toml(text: str) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads(text)


def _forget_hello_modules() -> None:
    for name in [m for m in sys.modules if m.startswith("vaezoo_hello") or m == "test_hello"]:
        del sys.modules[name]


@pytest.fixture
def hello(tmp_path, monkeypatch):
    """The tutorial package written out and installed as a distribution (module + dist-info)."""
    files = tutorial_files()
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    project = _load_toml(files["pyproject.toml"])["project"]
    src = tmp_path / "src"
    info = src / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    eps = project["entry-points"]["vaezoo"]
    (info / "entry_points.txt").write_text("[vaezoo]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.syspath_prepend(str(tmp_path / "tests"))
    _forget_hello_modules()
    importlib.invalidate_caches()
    yield project
    _forget_hello_modules()


# -- the hook reference -------------------------------------------------------------------------


def test_every_hook_is_documented_with_its_arguments():
    text = DOC.read_text()
    for name in HOOK_NAMES:
        args = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        heading = f"### `{name}({args})`"
        assert heading in text, f"docs/plugins.md has no reference section {heading!r} for the hook {name}"
    mentioned = set(re.findall(r"vaezoo_register_\w+", text))
    unknown = mentioned - set(HOOK_NAMES) - {"vaezoo_register_prior"}  # the misspelling example
    assert not unknown, f"docs/plugins.md mentions hooks that do not exist: {sorted(unknown)}"


def test_the_tutorial_shows_every_part_of_a_package():
    files = tutorial_files()
    assert {"pyproject.toml", "src/vaezoo_hello/plugin.py", "tests/test_hello.py"} <= set(files)
    project = _load_toml(files["pyproject.toml"])["project"]
    assert project["requires-python"] == ">=3.10"
    target = project["entry-points"]["vaezoo"]["hello"]
    assert f"src/{target.replace('.', '/')}.py" in files
    text = DOC.read_text()
    for needed in ("python -m build", "twine upload", "vaezoo.testing", "isolated_registry", "registered_plugin"):
        assert needed in text


# -- the tutorial's code runs -------------------------------------------------------------------


def test_tutorial_plugin_is_discovered_through_its_entry_point(hello, monkeypatch):
    monkeypatch.setenv("VAEZOO_PLUGINS", "hello")
    registry = discover()
    info = next(p for p in registry.plugins if p.name == "hello")
    assert (info.distribution, info.version, info.error) == ("vaezoo-hello", hello["version"], None)
    assert sorted(info.registered) == [
        ("decoder", "linear"), ("encoder", "linear"), ("likelihood", "cauchy"), ("prior", "laplace"),
    ]
    assert "vaezoo_hello.cauchy" not in sys.modules  # string factories: imported on first use


def test_tutorial_components_pass_the_checks_and_build_a_model(hello, tmp_path):
    plugin = importlib.import_module("vaezoo_hello.plugin")
    with registered_plugin(plugin, name="hello"):
        checked = check_plugin(
            "hello",
            params={
                "encoder/linear": {"data_shape": (1, 8, 8), "latent_dim": 3},
                "decoder/linear": {"latent_dim": 3, "param_shape": (2, 8, 8)},
            },
        )
        assert len(checked) == 4
        model = vaezoo.build_model({
            "data_shape": [1, 8, 8], "latent_dim": 2,
            "encoder": {"name": "linear", "min_scale": 0.01}, "decoder": "linear",
            "prior": "hello/laplace", "likelihood": "cauchy",
        })
        terms = model.elbo(torch.rand(6, 1, 8, 8))
        assert terms["loss"].shape == (6,) and torch.isfinite(terms["loss"]).all()
        model.save_pretrained(tmp_path / "saved")
        again = vaezoo.from_pretrained(tmp_path / "saved")
        assert again.sources["likelihood"]["plugin"] == "hello"
        z = torch.randn(4, 2)
        assert torch.equal(model.decode(z), again.decode(z))
        assert torch.equal(model.prior.log_prob(z), again.prior.log_prob(z))


def test_tutorial_tests_pass(hello):
    module = importlib.import_module("test_hello")
    tests = [getattr(module, n) for n in sorted(dir(module)) if n.startswith("test_")]
    assert len(tests) >= 2
    for test in tests:
        test()


def _step9_commands() -> list[list[str]]:
    """The shell commands of the tutorial's step 9 (train, publish), continuation lines joined."""
    import shlex

    text = DOC.read_text()
    step = text[text.index("### 9. Ship a pretrained model"):]
    step = step[: step.index("\n## ")]
    blocks = [body for lang, body in FENCE.findall(step) if lang in ("bash", "console")]
    assert blocks, "step 9 shows no commands"
    return [shlex.split(line) for line in blocks[0].replace("\\\n", " ").splitlines() if line.strip()]


def test_tutorial_step9_publishes_a_pretrained_model_the_plugin_ships(hello, tmp_path, monkeypatch, capsys):
    from vaezoo.cli import main as vaezoo_main
    from vaezoo.registry import reset_registry
    from vaezoo.zoo import publish
    from vaezoo.zoo.api import get_entry

    train, pub = _step9_commands()
    assert train[:2] == ["vaezoo", "train"] and pub[:3] == ["python", "-m", "vaezoo.zoo.publish"]
    assert "--weights-dir" in pub and "--catalogue" in pub
    monkeypatch.chdir(tmp_path)  # the package's root, as in the tutorial
    monkeypatch.setenv("VAEZOO_PLUGINS", "hello")
    reset_registry()
    fast = ["train.epochs=1", "train.device=cpu", "data.limit=200", "eval.num_samples=2",
            "log.progress=false", "log.images=false", "log.loggers=[jsonl]"]
    assert vaezoo_main(train[1:] + fast) == 0, capsys.readouterr().err
    assert publish.main(pub[3:] + ["--num-samples", "20", "--check-first", "50", "--check-num-samples", "10"]) == 0, \
        capsys.readouterr().err
    name = pub[pub.index("--name") + 1]
    assert (tmp_path / "src" / "vaezoo_hello" / "catalogue.json").is_file()

    reset_registry()  # discover again: the hook now finds catalogue.json
    assert name in vaezoo.list_pretrained()
    entry = get_entry(name)
    assert entry.weights == f"package://vaezoo_hello/weights/{name}.safetensors"
    assert entry.config["likelihood"]["name"] == "cauchy" and len(entry.sha256) == 64
    model = vaezoo.from_pretrained(name)
    assert model.sources["likelihood"]["plugin"] == "hello"
    capsys.readouterr()
    assert vaezoo_main(["zoo", "list"]) == 0 and name in capsys.readouterr().out

    module = importlib.import_module("test_hello")  # the tutorial's own test of its zoo entries
    with vaezoo.testing.isolated_registry(importlib.import_module("vaezoo_hello.plugin"), builtin_zoo=False):
        assert vaezoo.list_pretrained() == [name]
    module.test_published_models_reproduce_their_check()


def test_tutorial_zoo_test_passes_for_an_entry_on_the_builtin_nets(hello, tmp_path):
    """Step 7's zoo test, run as written, on a published entry whose config uses the built-in
    ``mlp`` encoder and decoder (with the plugin's prior and likelihood)."""
    from vaezoo.zoo.publish import publish

    plugin = importlib.import_module("vaezoo_hello.plugin")
    package = tmp_path / "src" / "vaezoo_hello"
    name = "mlp-cauchy.digits"
    with vaezoo.testing.isolated_registry(plugin):
        torch.manual_seed(0)
        model = vaezoo.build_model({
            "data_shape": [1, 8, 8], "latent_dim": 2, "encoder": {"name": "mlp", "hidden": [16]},
            "decoder": {"name": "mlp", "hidden": [16]}, "prior": "laplace", "likelihood": "cauchy",
        })
        model.save_pretrained(tmp_path / "model")
        publish(tmp_path / "model", name=name, recipe=None, data_overrides={"name": "digits", "binarize": "none", "dequantize": True},
                num_samples=2, check_first=20, check_num_samples=2, weights_dir=package / "weights",
                catalogue=package / "catalogue.json", echo=lambda _line: None)
    with vaezoo.testing.isolated_registry(plugin, builtin_zoo=False):
        assert vaezoo.list_pretrained() == [name]  # the test below has exactly this entry to check
        assert vaezoo.from_pretrained(name).config["encoder"]["name"] == "mlp"
    importlib.import_module("test_hello").test_published_models_reproduce_their_check()


def _kit_example(needle: str) -> str:
    """The python block of the testing-kit section that contains ``needle``."""
    text = DOC.read_text()
    section = text[text.index("## The testing kit"):]
    section = section[: section.index("\n## ")]
    blocks = [body for lang, body in FENCE.findall(section) if lang == "python" and needle in body]
    assert len(blocks) == 1, f"docs/plugins.md: expected one testing-kit example with {needle!r}, found {len(blocks)}"
    return blocks[0]


def test_the_check_plugin_example_names_the_plugin_as_isolated_registry_does(hello):
    source = _kit_example("check_plugin(")
    exec(compile(source, "docs/plugins.md (check_plugin example)", "exec"), {})
    plugin = importlib.import_module("vaezoo_hello.plugin")
    with vaezoo.testing.isolated_registry(plugin):  # the name the example's comment says fails
        with pytest.raises(AssertionError, match=r"no plugin named 'hello' is loaded; loaded: vaezoo, vaezoo_hello \(isolated_registry names"):
            check_plugin("hello")


def test_the_bounds_example_tells_a_likelihood_finite_on_the_bounds_from_one_that_is_not():
    import types

    from torch.distributions import Beta, ContinuousBernoulli, Independent

    class OnUnitInterval(vaezoo.Likelihood):
        num_params, discrete, family = 2, False, None

        def distribution(self, params):
            a, b = self.split(params, params.dim() - 1)
            return Independent(self.family(a, b), params.dim() - 1)

        def log_prob(self, x, params):
            return self.distribution(params).log_prob(x)

    class CB(OnUnitInterval):  # log p(x) = x log p + (1 - x) log(1 - p) + log C: finite at 0 and 1
        num_params, family = 1, staticmethod(lambda logits, _: ContinuousBernoulli(logits=logits, validate_args=False))

        def split(self, params, event_dims):
            return params, None

    class Beta01(OnUnitInterval):  # (a - 1) log x: infinite at x = 0 unless a = 1
        family = staticmethod(lambda a, b: Beta(a.exp(), b.exp(), validate_args=False))

    source = _kit_example("def test_log_prob_is_finite_on_the_bounds")
    for cls, finite in ((CB, True), (Beta01, False)):
        namespace = {"torch": torch, "vaezoo": vaezoo}
        exec(compile(source, "docs/plugins.md (bounds example)", "exec"), namespace)
        plugin = types.SimpleNamespace(vaezoo_register_likelihoods=vaezoo.hookimpl(lambda register, cls=cls: register("my_beta", cls)))
        with vaezoo.testing.isolated_registry(("bounds", plugin)):
            if finite:
                namespace["test_log_prob_is_finite_on_the_bounds"]()
            else:
                with pytest.raises(AssertionError):
                    namespace["test_log_prob_is_finite_on_the_bounds"]()


def test_builtin_zoo_false_keeps_the_builtin_components_but_not_their_zoo_entries(hello):
    plugin = importlib.import_module("vaezoo_hello.plugin")
    with vaezoo.testing.isolated_registry(plugin) as everything:
        assert vaezoo.list_pretrained()  # vaezoo's own entries
    with vaezoo.testing.isolated_registry(plugin, builtin_zoo=False) as registry:
        assert vaezoo.list_pretrained() == []
        assert {"mlp", "conv"} <= set(vaezoo.list_components("encoder"))
        assert registry.components == everything.components
        builtin = [p for p in registry.plugins if p.builtin]
        assert builtin and all(kind != "pretrained" for p in builtin for kind, _ in p.registered)
    with vaezoo.testing.isolated_registry(plugin, builtins=False):
        assert "mlp" not in vaezoo.list_components("encoder")
