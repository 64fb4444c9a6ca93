"""Models by name (``create_model``, ``list_models``) and fine-tuning from pretrained weights (``model.init_from``)."""

from __future__ import annotations

import json

import pytest
import torch

import vaezoo
from vaezoo.cli import main
from vaezoo.errors import ConfigError

ZOO = "mlp-bernoulli.digits"
QUICK = ["data.limit=128", "train.epochs=1", "eval.num_samples=4", "log.num_images=8", "log.loggers=[jsonl]"]


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k].to(sa[k].dtype)) for k in sa)


def test_list_models_names_zoo_models_and_architectures():
    everything = vaezoo.list_models()
    assert ZOO in everything and {"vae", "hierarchical"} <= set(everything)
    pretrained = vaezoo.list_models(pretrained=True)
    assert ZOO in pretrained and "vae" not in pretrained
    assert vaezoo.list_models("*.digits", pretrained=True) == sorted(n for n in pretrained if n.endswith(".digits"))
    assert vaezoo.list_models("hier*") == ["hierarchical"]


def test_create_model_pretrained_is_the_zoo_model():
    assert _same_weights(vaezoo.create_model(ZOO), vaezoo.from_pretrained(ZOO))


def test_create_model_fresh_weights_same_config_and_overrides():
    torch.manual_seed(0)
    fresh = vaezoo.create_model(ZOO, pretrained=False)
    zoo = vaezoo.from_pretrained(ZOO)
    assert fresh.config == zoo.config
    assert not _same_weights(fresh, zoo)
    small = vaezoo.create_model(ZOO, pretrained=False, latent_dim=3)
    assert small.latent_dim == 3 and small.config["latent_dim"] == 3


def test_create_model_pretrained_with_a_shape_override_names_the_tensors():
    with pytest.raises(ConfigError) as err:
        vaezoo.create_model(ZOO, latent_dim=3)
    msg = str(err.value)
    assert "\n" not in msg and "do not fit this model" in msg and "shape (source vs model)" in msg
    assert "encoder.head" in msg or "decoder.body" in msg


def test_create_model_from_an_architecture():
    model = vaezoo.create_model("vae", pretrained=False, data_shape=[1, 8, 8], latent_dim=4, encoder="mlp",
                                decoder="mlp", prior="normal", likelihood="bernoulli")
    assert model.latent_dim == 4
    with pytest.raises(ConfigError, match="'vae' is an architecture, which has no pretrained weights; pass pretrained=False"):
        vaezoo.create_model("vae")


def test_create_model_unknown_name_suggests():
    with pytest.raises(ConfigError, match=r"unknown model 'mlp-bernoulli\.digit'\. Did you mean 'mlp-bernoulli\.digits'\?"):
        vaezoo.create_model("mlp-bernoulli.digit")


def test_init_from_copies_the_weights_and_is_not_saved_in_the_config():
    zoo = vaezoo.from_pretrained(ZOO)
    model = vaezoo.build_model({**zoo.config, "init_from": ZOO})
    assert _same_weights(model, zoo) and "init_from" not in model.config
    with pytest.raises(ConfigError, match=r"^model\.init_from: expected a zoo name or a model/run folder, got 3$"):
        vaezoo.build_model({**zoo.config, "init_from": 3})
    with pytest.raises(ConfigError, match=r"^model\.init_from: .*neither a folder nor a pretrained model name"):
        vaezoo.build_model({**zoo.config, "init_from": "no-such.model"})


def test_train_init_from_starts_from_the_zoo_weights(tmp_path, capsys):
    """One epoch fine-tuned from the zoo model is far better than one epoch from scratch."""
    recipe = "configs/zoo/mlp-bernoulli.digits.yaml"
    runs = {}
    for label, extra in (("tuned", [f"model.init_from={ZOO}", "train.lr=1e-5"]), ("scratch", [])):
        out = tmp_path / label
        assert main(["train", recipe, *QUICK, *extra, "--out", str(out)]) == 0
        runs[label] = json.loads((out / "eval.json").read_text())
    capsys.readouterr()
    zoo_nll = vaezoo.zoo.api.get_entry(ZOO).metrics["nll"]
    assert runs["tuned"]["nll"] < runs["scratch"]["nll"] - 10
    assert runs["tuned"]["nll"] < zoo_nll + 3
    saved = json.loads((tmp_path / "tuned" / "model" / "config.json").read_text())
    assert "init_from" not in json.dumps(saved["model"])
    assert f"init_from: {ZOO}" in (tmp_path / "tuned" / "config.yaml").read_text()


def test_train_init_from_a_mismatch_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "r"
    code = main(["train", "configs/zoo/mlp-bernoulli.digits.yaml", *QUICK, f"model.init_from={ZOO}",
                 "model.latent_dim=3", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "do not fit this model" in err and "Traceback" not in err
    assert not out.exists()


def test_the_path_zoo_download_prints_loads_as_that_model(tmp_path, capsys):
    from vaezoo.errors import CheckpointError
    from vaezoo.zoo.api import download

    path = download(ZOO, progress=False)
    assert _same_weights(vaezoo.from_pretrained(str(path)), vaezoo.from_pretrained(ZOO))
    assert main(["eval", str(path), "--limit", "8", "-k", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_examples"] == 8
    stray = tmp_path / "other.safetensors"
    stray.write_bytes(path.read_bytes()[:-1] + b" ")
    with pytest.raises(CheckpointError, match="a weights file that is no zoo model's"):
        vaezoo.from_pretrained(str(stray))
    assert main(["eval", str(stray)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pass the folder holding config.json" in err
