"""The run config: defaults == configs/digits.yaml, merging, and one-line errors that teach."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from vaezoo.config import (
    default_config,
    load_config,
    schema_keys,
    to_container,
    to_yaml,
)
from vaezoo.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def error_of(overrides=(), path=None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, list(overrides))
    message = str(info.value)
    assert "\n" not in message, message
    return message


def test_schema_defaults_are_the_digits_recipe():
    recipe = yaml.safe_load((ROOT / "configs" / "digits.yaml").read_text())
    assert recipe == to_container(default_config())


def test_every_recipe_validates():
    recipes = sorted((ROOT / "configs").glob("*.yaml"))
    assert len(recipes) >= 3
    for path in recipes:
        if "studentt" in path.name:  # needs the example plugins installed
            continue
        load_config(path)


def test_every_schema_key_is_documented():
    docs = (ROOT / "docs" / "configs.md").read_text()
    missing = [key for key in schema_keys() if f"`{key}`" not in docs]
    assert not missing, f"not in docs/configs.md: {missing}"


def test_overrides_and_precedence(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  epochs: 7\n  lr: 0.01\nmodel:\n  latent_dim: 4\n")
    cfg = load_config(recipe, ["train.epochs=3", "model.prior.name=mixture", "model.prior.components=3"])
    assert cfg.train.epochs == 3 and cfg.train.lr == 0.01
    assert cfg.model.latent_dim == 4
    assert dict(cfg.model.prior) == {"name": "mixture", "components": 3}
    assert cfg.model.encoder.name == "mlp"  # untouched defaults stay


def test_changing_a_component_name_drops_the_old_components_params():
    cfg = load_config(None, ["model.encoder.name=conv"])
    assert dict(cfg.model.encoder) == {"name": "conv"}
    cfg = load_config(None, ["model.encoder.hidden=[8]"])  # same component: params merge
    assert dict(cfg.model.encoder) == {"name": "mlp", "hidden": [8]}


def test_resolved_config_round_trips_through_yaml(tmp_path):
    cfg = load_config(None, ["train.epochs=2", "model.prior.name=vamp", "model.prior.components=5"])
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(cfg))
    again = load_config(path)
    assert to_container(again) == to_container(cfg)


def test_unknown_key_names_the_path_and_suggests():
    message = error_of(["train.epoch=3"])
    assert message.startswith("train.epoch: unknown key.")
    assert "Did you mean 'epochs'?" in message and "'batch_size'" in message
    assert error_of(["trian.epochs=3"]).startswith("trian: unknown key. Did you mean 'train'?")
    assert "Did you mean 'encoder'?" in error_of(["model.encoderr.name=mlp"])


def test_wrong_types_name_the_path_and_the_type():
    assert error_of(["train.epochs=abc"]).startswith("train.epochs: expected an integer, got 'abc'")
    assert error_of(["train.lr=fast"]).startswith("train.lr: expected a number")
    assert error_of(["train.betas=[0.9, x]"]).startswith("train.betas[1]: expected a number")
    assert error_of(["log.progress=maybe"]).startswith("log.progress: expected true or false")
    assert error_of(["model.latent_dim=two"]).startswith("model.latent_dim: expected a positive integer")


def test_unknown_component_name_and_param_suggest():
    message = error_of(["model.prior.name=vam"])
    assert message.startswith("model.prior.name: unknown prior 'vam'. Did you mean 'vamp'?")
    message = error_of(["model.encoder.hiden=[8]"])
    assert message.startswith("model.encoder:") and "Did you mean 'hidden'?" in message
    assert "Did you mean 'gaussian'?" in error_of(["model.likelihood.name=gausian"])


def test_values_out_of_range_and_bad_choices():
    assert "Allowed: 'adam', 'adamw'" in error_of(["train.optimizer=sgd"])
    assert "Did you mean 'cosine'?" in error_of(["train.schedule=cosin"])
    assert error_of(["train.epochs=0"]).startswith("train.epochs: must be >= 1")
    assert error_of(["train.ema=1.5"]).startswith("train.ema:")
    assert error_of(["data.name=mnst"]).startswith("data.name: unknown dataset 'mnst'. Did you mean 'mnist'?")
    assert error_of(["train.precision=fp8"]).startswith("train.precision:")
    assert error_of(["objective.name=iwae", "objective.free_bits=1"]).startswith("objective: objective 'iwae' has no parameter 'free_bits'")


def test_override_syntax_and_files(tmp_path):
    assert "expected key.path=value" in error_of(["train.epochs"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: [1,\n")
    assert re.match(rf"{re.escape(str(bad))}:\d+:\d+: invalid YAML", error_of(path=bad))
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    assert "expected a mapping" in error_of(path=listy)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("train:\n  epoch: 3\n")
    message = error_of(path=unknown)
    assert message.startswith("train.epoch: unknown key. Did you mean 'epochs'?") and str(unknown) in message


def test_data_shape_may_be_given_or_left_out():
    assert "data_shape" not in load_config().model
    cfg = load_config(None, ["model.data_shape=[1,8,8]"])
    assert list(cfg.model.data_shape) == [1, 8, 8]
    assert error_of(["model.data_shape=[0]"]).startswith("model.data_shape:")
