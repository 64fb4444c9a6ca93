"""Plugin discovery through real entry points, and every way a plugin can misbehave."""

import subprocess
import sys

import pytest

import vaezoo
from vaezoo.errors import ComponentParamError, PluginError, UnknownComponentError
from vaezoo.plugins import PluginWarning, discover

from fake_dist import install_distribution

GOOD = """
from vaezoo import hookimpl

@hookimpl
def vaezoo_register_likelihoods(register):
    register("student_t", "good_impl:StudentT")

@hookimpl
def vaezoo_register_priors(register):
    register("normal", "vaezoo.priors.normal:StandardNormal")
"""
GOOD_IMPL = """
from vaezoo.likelihoods.location_scale import Gaussian

class StudentT(Gaussian):
    def __init__(self, df: float = 3.0, scale: float | None = None):
        super().__init__(scale=scale)
        self.df = df
"""


@pytest.fixture
def good_plugin(tmp_path, monkeypatch):
    install_distribution(
        tmp_path / "good", monkeypatch, dist="vaezoo-good", version="1.2.3",
        entry_points={"good": "good_plugin"}, modules={"good_plugin": GOOD, "good_impl": GOOD_IMPL},
    )
    monkeypatch.setenv("VAEZOO_PLUGINS", "good")


def test_entry_point_plugin_is_discovered_with_its_distribution(good_plugin):
    with pytest.warns(PluginWarning, match="prior 'normal' is registered by plugin 'vaezoo'.* and plugin 'good'"):
        registry = discover()
    info = next(p for p in registry.plugins if p.name == "good")
    assert (info.distribution, info.version, info.error) == ("vaezoo-good", "1.2.3", None)
    assert ("likelihood", "student_t") in info.registered
    assert "student_t" in registry.list("likelihood")
    assert registry.get("likelihood", "student_t").qualified_name == "good/student_t"


def test_string_factory_is_imported_only_on_first_create(good_plugin):
    with pytest.warns(PluginWarning):
        registry = discover()
    assert "good_impl" not in sys.modules
    lik = registry.create("likelihood", "student_t", df=4.0)
    assert "good_impl" in sys.modules and lik.df == 4.0


def test_name_clash_is_an_error_naming_both_sources_and_qualified_names_resolve(good_plugin):
    with pytest.warns(PluginWarning):
        registry = discover()
    with pytest.raises(PluginError, match=r"prior 'normal' is registered by more than one plugin: plugin 'vaezoo'.*plugin 'good' \(distribution vaezoo-good 1.2.3\)"):
        registry.create("prior", "normal", latent_dim=2)
    assert registry.create("prior", "good/normal", latent_dim=2).latent_dim == 2
    assert registry.create("prior", "vaezoo/normal", latent_dim=3).latent_dim == 3


def test_strict_mode_turns_plugin_problems_into_errors(good_plugin, monkeypatch):
    monkeypatch.setenv("VAEZOO_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="registered by"):
        discover()


def _install(tmp_path, monkeypatch, name, source, dist=None):
    install_distribution(
        tmp_path / name, monkeypatch, dist=dist or f"vaezoo-{name}", version="0.1",
        entry_points={name: f"{name}_plugin"}, modules={f"{name}_plugin": source},
    )


@pytest.mark.parametrize(
    "source, message",
    [
        ("raise ImportError('needs libfoo')\n", r"plugin 'bad' \(distribution vaezoo-bad 0.1\) failed to import: ImportError: needs libfoo"),
        (
            "from vaezoo import hookimpl\n@hookimpl\ndef vaezoo_register_priors(register):\n    register('half', 'x:y')\n    raise RuntimeError('boom')\n",
            r"plugin 'bad' \(distribution vaezoo-bad 0.1\) raised in a hook: RuntimeError: boom",
        ),
        (
            "from vaezoo import hookimpl\n@hookimpl\ndef vaezoo_register_prior(register):\n    pass\n",
            r"plugin 'bad'.* implements a hook that does not exist: vaezoo_register_prior\. Did you mean 'vaezoo_register_priors'\?",
        ),
        (
            "from vaezoo import hookimpl\n@hookimpl\ndef vaezoo_register_priors(register, extra):\n    pass\n",
            r"plugin 'bad'.* is invalid: vaezoo_register_priors\(register, extra\) declares argument\(s\) 'extra' that the hook does not provide",
        ),
        (
            "from vaezoo import hookimpl\n@hookimpl\ndef vaezoo_register_priors(register):\n    register('Bad Name!', 'x:y')\n",
            r"plugin 'bad'.* raised in a hook: PluginError: .*invalid name 'Bad Name!'",
        ),
        (
            "from vaezoo import hookimpl\n@hookimpl\ndef vaezoo_register_priors(register):\n    register('p', 42)\n",
            r"plugin 'bad'.* raised in a hook: PluginError: .*factory must be a class, a callable or a 'module:attr' string",
        ),
        ("import sys\nsys.exit(3)\n", r"plugin 'bad' \(distribution vaezoo-bad 0.1\) failed to import: SystemExit: 3$"),
        ("import sys\nsys.exit()\n", r"plugin 'bad'.* failed to import: SystemExit$"),
        ("raise GeneratorExit('odd')\n", r"plugin 'bad'.* failed to import: GeneratorExit: odd$"),
        ("def __dir__():\n    raise SystemExit(4)\n", r"plugin 'bad'.* raised while pluggy registered it: SystemExit: 4$"),
        (
            "from vaezoo import hookimpl\n@hookimpl\ndef vaezoo_register_priors(register):\n    register('half', 'x:y')\n    raise SystemExit('bye')\n",
            r"plugin 'bad'.* raised in a hook: SystemExit: bye$",
        ),
        (
            "from vaezoo import hookimpl\nclass Odd(BaseException):\n    pass\n"
            "@hookimpl\ndef vaezoo_register_priors(register):\n    register('half', 'x:y')\n"
            "@hookimpl\ndef vaezoo_register_pretrained(register):\n    raise Odd('not an Exception')\n",
            r"plugin 'bad'.* raised in a hook: Odd: not an Exception$",
        ),
    ],
    ids=[
        "import-error", "hook-raises", "misspelled-hook", "unknown-argument", "bad-name", "bad-factory",
        "import-sys-exit", "import-bare-sys-exit", "import-generator-exit", "registration-sys-exit",
        "hook-sys-exit", "pretrained-hook-base-exception",
    ],
)
def test_a_broken_plugin_is_one_warning_and_everything_else_works(tmp_path, monkeypatch, good_plugin, source, message):
    _install(tmp_path, monkeypatch, "bad", source)
    monkeypatch.setenv("VAEZOO_PLUGINS", "bad,good")
    with pytest.warns(PluginWarning) as record:
        registry = discover()
    bad = [str(w.message) for w in record if "'bad'" in str(w.message)]
    assert len(bad) == 1, bad
    assert __import__("re").search(message, bad[0]), bad[0]
    info = next(p for p in registry.plugins if p.name == "bad")
    assert info.error and info.registered == []
    assert "half" not in registry.list("prior")  # nothing of a failed plugin is kept
    assert "student_t" in registry.list("likelihood")  # the good plugin still works
    assert "bernoulli" in registry.list("likelihood")


BASE_EXCEPTION_PLUGINS = {
    "exits": ("import sys\nsys.exit(3)\n", "failed to import: SystemExit: 3"),
    "hookexit": (
        "from vaezoo import hookimpl\n@hookimpl\ndef vaezoo_register_priors(register):\n    raise SystemExit(7)\n",
        "raised in a hook: SystemExit: 7",
    ),
    "custom": (
        "class Odd(BaseException):\n    pass\nraise Odd('beyond Exception')\n",
        "failed to import: Odd: beyond Exception",
    ),
}


@pytest.mark.parametrize("name", sorted(BASE_EXCEPTION_PLUGINS))
def test_a_plugin_raising_a_base_exception_does_not_end_the_command(tmp_path, monkeypatch, capsys, name):
    from vaezoo.cli import main
    from vaezoo.registry import reset_registry

    source, error = BASE_EXCEPTION_PLUGINS[name]
    _install(tmp_path, monkeypatch, name, source)
    monkeypatch.setenv("VAEZOO_PLUGINS", name)
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert f"{name}  [vaezoo-{name} 0.1]  ERROR" in out and error in out
    assert "vaezoo  [vaezoo" in out  # the built-ins are still listed
    reset_registry()
    assert main(["list"]) == 0
    captured = capsys.readouterr()
    assert "bernoulli" in captured.out and "vamp" in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"vaezoo: warning: vaezoo plugin {name!r} (distribution vaezoo-{name} 0.1)") and error in err[0]


@pytest.mark.parametrize(
    "source",
    [
        "raise KeyboardInterrupt\n",
        "from vaezoo import hookimpl\n@hookimpl\ndef vaezoo_register_priors(register):\n    raise KeyboardInterrupt\n",
    ],
    ids=["at-import", "in-a-hook"],
)
def test_keyboard_interrupt_in_a_plugin_still_propagates(tmp_path, monkeypatch, capsys, source):
    from vaezoo.cli import main

    _install(tmp_path, monkeypatch, "ctrlc", source)
    monkeypatch.setenv("VAEZOO_PLUGINS", "ctrlc")
    with pytest.raises(KeyboardInterrupt):
        discover()
    assert main(["list"]) == 130  # the CLI's own Ctrl-C handling, not a plugin warning
    assert capsys.readouterr().err.strip() == "vaezoo: interrupted"


def test_a_plugin_failing_in_a_hook_leaves_nothing_in_the_plugin_manager():
    import types

    from vaezoo import hookimpl
    from vaezoo.plugins import PluginInfo, load_plugin, new_plugin_manager
    from vaezoo.registry import Registry

    def exits(register):
        register("half", "x:y")
        raise SystemExit(2)

    plugin = types.SimpleNamespace(vaezoo_register_priors=hookimpl(exits))
    pm, registry = new_plugin_manager(), Registry()
    info = PluginInfo("exits", None, None, "exits")
    with pytest.warns(PluginWarning, match=r"plugin 'exits' raised in a hook: SystemExit: 2$"):
        load_plugin(pm, registry, info, lambda: plugin)
    assert not pm.has_plugin("exits:exits") and pm.hook.vaezoo_register_priors.get_hookimpls() == []
    assert info.error == "raised in a hook: SystemExit: 2" and registry.list("prior") == []


def test_vaezoo_plugins_selects_entry_points(good_plugin, monkeypatch):
    monkeypatch.setenv("VAEZOO_PLUGINS", "")
    registry = discover()
    assert "student_t" not in registry.list("likelihood")
    assert [p.name for p in registry.plugins] == ["vaezoo"] * len(registry.plugins)
    monkeypatch.setenv("VAEZOO_PLUGINS", "goood")
    with pytest.warns(PluginWarning, match="VAEZOO_PLUGINS names 'goood'.*Did you mean 'good'"):
        discover()


def test_factory_returning_the_wrong_type_is_named(tmp_path, monkeypatch):
    _install(tmp_path, monkeypatch, "wrong", "from vaezoo import hookimpl\n@hookimpl\ndef vaezoo_register_likelihoods(register):\n    register('oops', dict)\n")
    monkeypatch.setenv("VAEZOO_PLUGINS", "wrong")
    registry = discover()
    with pytest.raises(PluginError, match=r"likelihood 'wrong/oops' from plugin 'wrong'.*returned a dict, expected a vaezoo.Likelihood"):
        registry.create("likelihood", "oops")


def test_unmarked_hook_function_is_reported(tmp_path, monkeypatch):
    _install(tmp_path, monkeypatch, "nomark", "def vaezoo_register_priors(register):\n    register('x', 'a:b')\n")
    monkeypatch.setenv("VAEZOO_PLUGINS", "nomark")
    with pytest.warns(PluginWarning, match="defines vaezoo_register_priors without @vaezoo.hookimpl"):
        discover()


def test_create_errors_teach():
    with pytest.raises(UnknownComponentError, match=r"unknown component kind 'likelyhood'\. Did you mean 'likelihood'\?"):
        vaezoo.create("likelyhood", "bernoulli")
    with pytest.raises(UnknownComponentError, match=r"unknown likelihood 'bernouli'\. Did you mean 'bernoulli'\?.*Available likelihoods: .*'gaussian'"):
        vaezoo.create("likelihood", "bernouli")
    with pytest.raises(ComponentParamError, match=r"likelihood 'gaussian' has no parameter 'scael'\. Did you mean 'scale'\? Accepted: .*scale=None"):
        vaezoo.create("likelihood", "gaussian", scael=1.0)
    with pytest.raises(ComponentParamError, match=r"likelihood 'gaussian' parameter 'scale' must be .*float.*got str 'big'"):
        vaezoo.create("likelihood", "gaussian", scale="big")
    with pytest.raises(ComponentParamError, match=r"prior 'normal' is missing required parameter\(s\) 'latent_dim'"):
        vaezoo.create("prior", "normal")


def test_list_components_filters_with_wildcards():
    assert vaezoo.list_components("likelihood", "discretized*") == ["discretized_logistic", "discretized_logistic_mixture"]
    assert vaezoo.list_components("prior", "vaezoo/*") == ["categorical", "mixture", "normal", "vamp"]
    everything = vaezoo.list_components()
    assert set(everything) == {"encoder", "decoder", "prior", "likelihood", "objective", "architecture", "logger"}
    assert everything["encoder"] == ["categorical", "conv", "mlp"]


def test_builtins_come_through_the_hooks():
    registry = discover(entry_points=False)
    modules = {p.module for p in registry.plugins if p.builtin}
    assert {"vaezoo.likelihoods", "vaezoo.nets", "vaezoo.priors"} <= modules
    assert registry.get("likelihood", "bernoulli").qualified_name == "vaezoo/bernoulli"
    empty = discover(entry_points=False, builtins=False)
    assert empty.list("likelihood") == []


def test_import_vaezoo_is_lazy():
    code = (
        "import sys, vaezoo\n"
        "heavy = [m for m in ('torch', 'vaezoo.registry', 'vaezoo.likelihoods', 'vaezoo.nets', 'omegaconf') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
