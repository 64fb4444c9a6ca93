"""``vaezoo describe`` / ``list --params``: parameters, defaults and meanings read from the components."""

from __future__ import annotations

import json

import pytest

from vaezoo import describe as d
from vaezoo.cli import main
from vaezoo.components import Prior
from vaezoo.registry import Registry, Source, use_registry


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("vaezoo: error: ") and "Traceback" not in err[0]
    return err[0]


def test_docs_table_is_up_to_date():
    assert not d.update(check=True), "docs/configs.md is out of date: run python -m vaezoo.describe --write-docs"


def test_an_out_of_date_table_is_found(tmp_path):
    page = tmp_path / "configs.md"
    page.write_text(f"intro\n{d.BEGIN}\n| stale |\n{d.END}\nrest\n")
    assert d.update(page, check=True) and "stale" in page.read_text()  # --check writes nothing
    assert d.update(page) and not d.update(page, check=True)
    text = page.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{d.END}\nrest\n") and "`vamp`" in text
    assert d.main(["--check", "--path", str(page)]) == 0
    page.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        d.update(page, check=True)


def test_every_builtin_parameter_has_a_meaning():
    described = d.builtin_descriptions()
    assert set(described) == {"encoder", "decoder", "prior", "likelihood", "objective", "architecture", "logger"}
    missing = [f"{x.kind} {x.name}: {p.name}" for ds in described.values() for x in ds for p in x.params if not p.meaning]
    assert not missing, f"document these in the component's docstring 'Parameters:' list: {missing}"
    assert sum(len(x.params) for ds in described.values() for x in ds) > 40


def test_signature_defaults_without_the_fixed_arguments():
    mlp = d.describe("encoder", "mlp")
    params = {p.name: p for p in mlp.params}
    assert "data_shape" not in params and "latent_dim" not in params  # vaezoo supplies them (vaezoo.kinds)
    assert list(params) == ["hidden", "activation", "min_scale"]
    assert params["hidden"].default == (512, 256) and params["hidden"].recipe == [256, 128]  # configs/digits.yaml
    assert params["activation"].recipe == d.REQUIRED  # the recipe does not change it
    vae = {p.name: p for p in d.describe("architecture", "vae").params}
    assert "components" not in vae and vae["data_shape"].default == d.FROM_DATA
    assert vae["latent_dim"].default == d.REQUIRED and vae["latent_dim"].recipe == 16
    assert {p.name: p.default for p in d.describe("objective", "iwae").params} == {
        "num_samples": 5, "dreg": False, "beta": 1.0, "kl_warmup_epochs": 0.0,
    }
    assert d.describe("likelihood", "bernoulli").params == () and not d.describe("likelihood", "bernoulli").takes_any


def test_a_subclass_inherits_its_bases_bullets():
    gaussian = {p.name: p.meaning for p in d.describe("likelihood", "gaussian").params}
    assert set(gaussian) == {"scale", "min_log_scale"} and "fixed scale" in gaussian["scale"]


def test_meanings_parser():
    doc = """Summary.

    Parameters:

    * ``a`` -- first, going on
      to a second line.
    * ``b``, ``c`` -- shared.

    * ``not_a_param`` -- after the list has ended.
    Text.
    """
    assert d.meanings(doc) == {"a": "first, going on to a second line.", "b": "shared.", "c": "shared."}
    assert d.meanings(None) == {} and d.meanings("no list here") == {}


class _Documented(Prior):
    """A plugin prior.

    Parameters:

    * ``width`` -- how wide.
    """

    def __init__(self, latent_dim: int, width: int = 3, depth: int = 2) -> None:
        super().__init__(latent_dim)


def _plugin_registry() -> Registry:
    from vaezoo.plugins import discover

    registry = discover(entry_points=False)
    registry.add("prior", "wide", _Documented, Source("myplugin", "my-dist", "1.0"))
    return registry


def test_cli_describe(capsys):
    assert main(["describe", "prior", "vamp"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("prior vamp ") and "set by vaezoo: latent_dim" in out
    for word in ("components", "500", "squash", "hardtanh", "pseudo-inputs"):
        assert word in out
    with use_registry(_plugin_registry()):
        assert main(["describe", "priors", "wide", "--json"]) == 0
        (entry,) = json.loads(capsys.readouterr().out)["prior"]
        assert entry["source"].startswith("plugin 'myplugin'")
        assert [(p["name"], p["default"], p["meaning"]) for p in entry["params"]] == [
            ("width", 3, "how wide."), ("depth", 2, ""),
        ]
        assert main(["describe", "prior", "wide"]) == 0
        assert "(not documented)" in capsys.readouterr().out
        assert main(["describe", "prior"]) == 0  # every prior
        out = capsys.readouterr().out
        assert "prior wide " in out and "prior vamp " in out and "prior normal " in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["describe", "prior", "vam"], "unknown prior 'vam'. Did you mean 'vamp'?"),
        (["describe", "prio", "vamp"], "unknown component kind 'prio'. Did you mean 'prior'?"),
        (["describe", "likelihood", "gausian"], "Did you mean 'gaussian'?"),
    ],
)
def test_cli_describe_unknown_is_one_line(args, expected, capsys):
    assert main(args) == 2
    assert expected in one_error_line(capsys)
    assert capsys.readouterr().out == ""


def test_cli_list_params(capsys):
    assert main(["list", "--params"]) == 0
    out = capsys.readouterr().out
    for header in ("encoder mlp ", "decoder conv ", "prior vamp ", "likelihood gaussian ", "objective iwae ",
                   "architecture hierarchical "):
        assert header in out
    assert "kl_warmup_epochs" in out and "(default recipe: 10.0)" in out
    assert main(["list", "objective", "--params", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert list(listed) == ["objective"]
    assert {e["name"] for e in listed["objective"]} >= {"elbo", "iwae", "beta_tc", "mmd"}
