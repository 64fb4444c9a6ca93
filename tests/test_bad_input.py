"""The bad-input battery: every refused command answers in one line and changes nothing.

Each case sets up a small world (a copy of a finished tiny run, its model folder, a zoo cache,
data files) in a temporary folder, runs the command line in-process, and asserts:

* the exit status (2 user error, 3 I/O error; 0 where a broken plugin must not stop a command);
* exactly one line on stderr, ``vaezoo: error: ...`` (or ``vaezoo: warning: ...``), no traceback,
  and the words that say what went wrong;
* every file in the world is byte for byte and mode for mode what it was before, no file
  was added (unless the case says which may be) and no temporary file is left anywhere.

Disk-full and read-only cases run on a small tmpfs when the tests run as root (as in CI), and
by fault injection (the system call failing with that errno) otherwise.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fake_dist import install_distribution

from vaezoo.cli import main
from vaezoo.registry import reset_registry

TINY = [
    "data.limit=96",
    "model.latent_dim=2",
    "model.encoder.hidden=[16]",
    "model.decoder.hidden=[16]",
    "train.epochs=2",
    "train.batch_size=32",
    "eval.num_samples=4",
    "log.num_images=8",
    "log.loggers=[jsonl]",
    "log.progress=false",
]
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("battery") / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    return out


@dataclass
class World:
    """The folder a case may touch, and where things are in it."""

    root: Path
    monkeypatch: pytest.MonkeyPatch
    allowed_new: list[str] = field(default_factory=list)  # relative paths a case may create

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def model(self) -> Path:
        return self.root / "run" / "model"

    def write(self, rel: str, content: str | bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    def model_copy(self, name: str = "m") -> Path:
        dest = self.root / name
        shutil.copytree(self.model, dest)
        return dest

    def edit_config(self, folder: Path, change: Callable[[dict], dict | list | str]) -> None:
        path = folder / "config.json"
        value = change(json.loads(path.read_text()))
        path.write_text(value if isinstance(value, str) else json.dumps(value))


@pytest.fixture
def world(tmp_path, finished_run, monkeypatch):
    root = tmp_path / "world"
    root.mkdir()
    shutil.copytree(finished_run, root / "run")
    monkeypatch.chdir(root)
    monkeypatch.setenv("VAEZOO_HOME", str(root / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    return World(root, monkeypatch)


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file and folder under ``root``: content digest (files) and mode."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        out[str(path.relative_to(root))] = (digest, st.st_mode)
    return out


def temp_files(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.name.endswith((".tmp", ".part")) or p.name.startswith(".tmp")]


# -- the cases -------------------------------------------------------------------------------
@dataclass
class Case:
    setup: Callable[[World], list[str]]
    code: int
    words: str
    stream: str = "error"  # "error": one error line; "warning": one warning line (the command succeeds)


CASES: dict[str, Case] = {}


def case(name: str, code: int = 2, words: str = "", stream: str = "error"):
    def add(setup):
        assert name not in CASES, name
        CASES[name] = Case(setup, code, words, stream)
        return setup

    return add


def args(*argv: str) -> Callable[[World], list[str]]:
    """A case that needs no setup: ``{run}``, ``{model}``, ``{root}`` are filled in."""

    def setup(w: World) -> list[str]:
        return [a.format(run=w.run, model=w.model, root=w.root) for a in argv]

    return setup


def simple(name: str, argv: list[str], words: str, code: int = 2) -> None:
    case(name, code, words)(args(*argv))


# command-line arguments
simple("cli-unknown-command", ["bogus"], "invalid choice: 'bogus'")
simple("cli-unknown-option", ["train", "--bogus"], "unrecognized arguments: --bogus")
simple("cli-eval-no-run", ["eval"], "required: RUN_DIR")
simple("cli-sample-no-out", ["sample", "{run}"], "required: --out")
simple("cli-eval-k-not-int", ["eval", "{run}", "-k", "many"], "invalid int value: 'many'")
simple("cli-eval-k-zero", ["eval", "{run}", "-k", "0"], "--num-samples: must be >= 1")
simple("cli-eval-batch-negative", ["eval", "{run}", "--batch-size", "-3"], "--batch-size: must be >= 1")
simple("cli-eval-limit-zero", ["eval", "{run}", "--limit", "0"], "--limit: must be >= 1")
simple("cli-eval-split-bad", ["eval", "{run}", "--split", "train"], "invalid choice: 'train'")
simple("cli-eval-device-bad", ["eval", "{run}", "--device", "tpu"], "--device: 'tpu' is not a device")
simple("cli-eval-binarize-bad", ["eval", "{run}", "--binarize", "yes"], "invalid choice: 'yes'")
simple("cli-sample-n-zero", ["sample", "{run}", "--n", "0", "--out", "s.png"], "--n: must be >= 1")
simple("cli-sample-not-png", ["sample", "{run}", "--out", "s.jpg"], "expected a .png")
simple("cli-sample-n-huge", ["sample", "{run}", "--n", "100000000", "--out", "s.png"], "100,000,000")
simple("cli-list-bad-kind", ["list", "priors"], "invalid choice: 'priors'")
simple("cli-zoo-info-no-name", ["zoo", "info"], "required: NAME")
simple("cli-zoo-bad-action", ["zoo", "fetch"], "invalid choice: 'fetch'")
simple("cli-resume-with-config", ["train", "configs/digits.yaml", "--resume", "{run}"], "not both")
simple("cli-resume-with-out", ["train", "--resume", "{run}", "--out", "elsewhere"], "--out cannot move")
simple("cli-stray-positional", ["eval", "{run}", "extra"], "unrecognized arguments: extra")

# configs and overrides: refused before a run folder exists
NEW = "{root}/new"
simple("cfg-unknown-key", ["train", "train.epoch=5", "--out", NEW], "Did you mean 'epochs'")
simple("cfg-unknown-section", ["train", "trian.epochs=5", "--out", NEW], "trian")
simple("cfg-wrong-type", ["train", "train.epochs=many", "--out", NEW], "train.epochs")
simple("cfg-negative-lr", ["train", "train.lr=-1", "--out", NEW], "train.lr")
simple("cfg-zero-batch", ["train", "train.batch_size=0", "--out", NEW], "train.batch_size")
simple("cfg-bad-optimizer", ["train", "train.optimizer=sgd", "--out", NEW], "train.optimizer")
simple("cfg-bad-schedule", ["train", "train.schedule=step", "--out", NEW], "train.schedule")
simple("cfg-bad-precision", ["train", "train.precision=8", "--out", NEW], "train.precision")
simple("cfg-unknown-encoder", ["train", "model.encoder.name=transformer", "--out", NEW], "transformer")
simple("cfg-misspelt-prior", ["train", "model.prior.name=vam", "--out", NEW], "Did you mean 'vamp'")
simple("cfg-unknown-param", ["train", "model.encoder.hiden=[8]", "--out", NEW], "hiden")
simple("cfg-latent-zero", ["train", "model.latent_dim=0", "--out", NEW], "latent_dim")
simple("cfg-latent-absurd", ["train", "model.latent_dim=1000000000", "--out", NEW], "weights")
simple("cfg-hidden-absurd", ["train", "model.encoder.hidden=[2000000000]", "--out", NEW], "2000000000")
simple("cfg-unknown-dataset", ["train", "data.name=imagenet", "--out", NEW], "imagenet")
simple("cfg-bad-binarize", ["train", "data.binarize=maybe", "--out", NEW], "data.binarize")
simple("cfg-val-fraction", ["train", "data.val_fraction=2", "--out", NEW], "data.val_fraction")
simple("cfg-empty-train", ["train", "data.limit=0", "--out", NEW], "data.limit")
simple("cfg-patience-no-val", ["train", "train.patience=3", "data.val_fraction=0", "--out", NEW], "train.patience")
simple("cfg-section-given-a-value", ["train", "data=digits", "--out", NEW], "did you mean data.name=digits?")
simple("cfg-section-given-a-number", ["train", "train=3", "--out", NEW], "train: is a section")
simple("cfg-eval-val-no-val", ["train", "eval.split=val", "data.val_fraction=0", "--out", NEW], "eval.split=val")
simple("cfg-override-no-value", ["train", "train.epochs", "--out", NEW], "train.epochs")
simple("cfg-override-plus", ["train", "+train.foo=1", "--out", NEW], "'+'")
simple("cfg-bad-yaml-value", ["train", "model.encoder.hidden=[8", "--out", NEW], "model.encoder.hidden")
simple("cfg-interpolation", ["train", "log.name=${{oops}}", "log.root={root}/runs"], "oops")
simple("cfg-missing-file", ["train", "missing.yaml", "--out", NEW], "missing.yaml")
simple("cfg-data-shape-wrong", ["train", "model.data_shape=[1,28,28]", "--out", NEW], "model.data_shape")


@case("cfg-invalid-yaml", words="invalid YAML")
def _(w):
    w.write("bad.yaml", "train:\n  epochs: [1,\n")
    return ["train", "bad.yaml", "--out", str(w.root / "new")]


@case("cfg-yaml-list", words="expected a mapping")
def _(w):
    w.write("list.yaml", "- 1\n- 2\n")
    return ["train", "list.yaml", "--out", str(w.root / "new")]


@case("cfg-yaml-folder", words="is a folder")
def _(w):
    (w.root / "folder.yaml").mkdir()
    return ["train", "folder.yaml", "--out", str(w.root / "new")]


@case("cfg-yaml-unknown-key", words="Did you mean 'epochs'")
def _(w):
    w.write("typo.yaml", "train:\n  epochz: 3\n")
    return ["train", "typo.yaml", "--out", str(w.root / "new")]


# run folders: --out and --resume
@case("run-out-is-a-run", words="already holds a run")
def _(w):
    return ["train", *TINY, "--out", str(w.run)]


@case("run-out-is-a-file", words="is a file")
def _(w):
    w.write("afile", "x")
    return ["train", *TINY, "--out", str(w.root / "afile")]


@case("run-out-before-first-checkpoint", words="--resume")
def _(w):
    (w.run / "checkpoint.safetensors").unlink()
    shutil.rmtree(w.model)
    return ["train", *TINY, "--out", str(w.run)]


simple("resume-missing-folder", ["train", "--resume", "{root}/nothing"], "no such folder")
simple("resume-model-folder", ["train", "--resume", "{model}"], "no config.yaml")


@case("resume-a-file", words="no such folder")
def _(w):
    w.write("afile", "x")
    return ["train", "--resume", str(w.root / "afile")]


simple("resume-changed-model", ["train", "--resume", "{run}", "model.latent_dim=8", "train.epochs=3"], "does not fit")
simple("resume-fewer-epochs", ["train", "--resume", "{run}", "train.epochs=1"], "already trained 2 epochs")
simple("resume-finished", ["train", "--resume", "{run}"], "trained all 2 epochs")
simple("resume-ema-added", ["train", "--resume", "{run}", "train.ema=0.99", "train.epochs=3"], "EMA")
simple("resume-bad-override", ["train", "--resume", "{run}", "train.epoch=3"], "Did you mean 'epochs'")


@case("resume-corrupt-checkpoint", words="unreadable checkpoint")
def _(w):
    (w.run / "checkpoint.safetensors").write_bytes(b"\x00" * 100)
    return ["train", "--resume", str(w.run), "train.epochs=3"]


@case("resume-not-a-checkpoint", words="not a vaezoo training checkpoint")
def _(w):
    shutil.copyfile(w.model / "model.safetensors", w.run / "checkpoint.safetensors")
    return ["train", "--resume", str(w.run), "train.epochs=3"]


@case("resume-broken-config-yaml", words="invalid YAML")
def _(w):
    (w.run / "config.yaml").write_text("model: [\n")
    return ["train", "--resume", str(w.run), "train.epochs=3"]


# model folders and weights files
simple("eval-missing", ["eval", "{root}/nothing"], "does not exist")
simple("sample-missing", ["sample", "{root}/nothing", "--out", "s.png"], "does not exist")


@case("eval-empty-folder", words="neither a run folder")
def _(w):
    (w.root / "empty").mkdir()
    return ["eval", str(w.root / "empty")]


@case("eval-run-without-model", words="--resume")
def _(w):
    shutil.rmtree(w.model)
    return ["eval", str(w.run)]


@case("eval-config-not-json", words="not valid JSON")
def _(w):
    m = w.model_copy()
    (m / "config.json").write_text("{model: ")
    return ["eval", str(m), "--data", "digits"]


@case("eval-config-json-list", words="config.json")
def _(w):
    m = w.model_copy()
    w.edit_config(m, lambda c: [1, 2])
    return ["eval", str(m), "--data", "digits"]


@case("eval-config-unknown-component", words="not installed")
def _(w):
    m = w.model_copy()
    w.edit_config(m, lambda c: {**c, "model": {**c["model"], "prior": {"name": "flowprior"}}})
    return ["eval", str(m)]


@case("eval-config-absurd-size", words="weights")
def _(w):
    m = w.model_copy()
    w.edit_config(m, lambda c: {**c, "model": {**c["model"], "latent_dim": 1000000000}})
    return ["eval", str(m)]


@case("eval-config-bad-dtype", words="unknown dtype")
def _(w):
    m = w.model_copy()
    w.edit_config(m, lambda c: {**c, "dtype": "float8"})
    return ["eval", str(m)]


@case("eval-weights-garbage", words="not a readable safetensors file")
def _(w):
    m = w.model_copy()
    (m / "model.safetensors").write_bytes(b"garbage" * 10)
    return ["eval", str(m)]


@case("eval-weights-truncated", words="model.safetensors")
def _(w):
    m = w.model_copy()
    data = (m / "model.safetensors").read_bytes()
    (m / "model.safetensors").write_bytes(data[: len(data) // 2])
    return ["eval", str(m)]


@case("eval-weights-wrong-shape", words="wrong shape")
def _(w):
    m = w.model_copy()
    w.edit_config(m, lambda c: {**c, "model": {**c["model"], "latent_dim": 3}})
    return ["eval", str(m)]


@case("eval-weights-missing-keys", words="missing keys")
def _(w):
    m = w.model_copy()
    w.edit_config(m, lambda c: {**c, "model": {**c["model"], "encoder": {"name": "mlp", "hidden": [16, 16]}}})
    return ["eval", str(m)]


@case("eval-weights-metadata-not-json", words="not valid JSON")
def _(w):
    import torch
    from safetensors.torch import load_file, save_file

    m = w.model_copy()
    state = load_file(str(m / "model.safetensors"))
    save_file({k: torch.as_tensor(v) for k, v in state.items()}, str(m / "model.safetensors"), metadata={"vaezoo_run": "{data"})
    return ["eval", str(m)]


def _edit_run_data(w: World, **changes) -> None:
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(w.run / "config.yaml")
    for key, value in changes.items():
        cfg.data[key] = value
    OmegaConf.save(cfg, w.run / "config.yaml")


@case("eval-run-config-bad-data", words="config.yaml: data.binarize: unknown mode 'maybe'")
def _(w):
    _edit_run_data(w, binarize="maybe")
    return ["eval", str(w.run)]


@case("eval-weights-metadata-bad-data", words="model.safetensors: metadata 'vaezoo_run': data.binarize")
def _(w):
    import torch
    from safetensors.torch import load_file, save_file

    m = w.model_copy()
    state = load_file(str(m / "model.safetensors"))
    run = json.dumps({"data": {"name": "digits", "binarize": "maybe"}})
    save_file({k: torch.as_tensor(v) for k, v in state.items()}, str(m / "model.safetensors"), metadata={"vaezoo_run": run})
    return ["eval", str(m)]


@case("compare-val-split-empty", words="run: the val split is empty")
def _(w):
    _edit_run_data(w, val_fraction=0.0)
    return ["compare", str(w.run), str(w.model_copy()), "--split", "val"]


@case("eval-weights-missing", words="model.safetensors")
def _(w):
    m = w.model_copy()
    (m / "model.safetensors").unlink()
    (m / "junk").write_text("")  # keeps the folder recognisable as a model folder by its config
    return ["eval", str(m)]


@case("eval-model-folder-no-data", words="--data NAME")
def _(w):
    import vaezoo

    m = w.root / "bare"
    vaezoo.from_pretrained(str(w.model)).save_pretrained(str(m))
    return ["eval", str(m)]


simple("eval-other-data-wrong-shape", ["eval", "{run}", "--data", "fashion_mnist", "--data-root", "{root}"], "fashion_mnist")
simple("eval-unknown-data", ["eval", "{run}", "--data", "imagenet"], "imagenet")


@case("sample-config-absurd", words="1000000000")
def _(w):
    m = w.model_copy()
    w.edit_config(m, lambda c: {**c, "model": {**c["model"], "decoder": {"name": "mlp", "hidden": [1000000000]}}})
    return ["sample", str(m), "--out", str(w.root / "s.png")]


# datasets
@case("data-image-folder-empty", words="no image files")
def _(w):
    (w.root / "images").mkdir()
    return ["train", "data.name=image_folder", f"data.root={w.root / 'images'}", "--out", str(w.root / "new")]


@case("data-image-folder-corrupt", words="bad.png")
def _(w):
    _png(w.root / "images" / "a.png", 8)
    w.write("images/bad.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    return ["train", "data.name=image_folder", f"data.root={w.root / 'images'}", "--out", str(w.root / "new")]


@case("data-image-folder-bomb", words="bomb.png")
def _(w):
    _png(w.root / "images" / "a.png", 8)
    w.write("images/bomb.png", _huge_png_header(100_000, 100_000))
    return ["train", "data.name=image_folder", f"data.root={w.root / 'images'}", "--out", str(w.root / "new")]


@case("data-idx-missing", words="fashion_mnist")
def _(w):
    (w.root / "nofashion").mkdir()
    return ["train", "data.name=fashion_mnist", f"data.root={w.root / 'nofashion'}", "--out", str(w.root / "new")]


@case("data-idx-corrupt", words="idx")
def _(w):
    folder = w.root / "fashion"
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        w.write(f"fashion/{name}", b"\x00\x00\x08\x03" + b"\x00" * 7)
    return ["train", "data.name=fashion_mnist", f"data.root={folder}", "--out", str(w.root / "new")]


@case("data-tensor-missing", words="data.root")
def _(w):
    return ["train", "data.name=tensor", f"data.root={w.root / 'x.safetensors'}", "--out", str(w.root / "new")]


@case("data-tensor-not-safetensors", words="x.safetensors")
def _(w):
    w.write("x.safetensors", b"not tensors at all")
    return ["train", "data.name=tensor", f"data.root={w.root / 'x.safetensors'}", "--out", str(w.root / "new")]


# plugins
def _plugin(w: World, source: str, name: str = "brokenplug") -> None:
    install_distribution(
        w.root.parent / "site",
        w.monkeypatch,
        dist=f"vaezoo-{name}",
        version="1.0",
        entry_points={name: f"{name}_mod"},
        modules={f"{name}_mod": source},
    )
    w.monkeypatch.setenv("VAEZOO_PLUGINS", name)


@case("plugin-sys-exit-list", code=0, words="SystemExit", stream="warning")
def _(w):
    _plugin(w, "import sys\nsys.exit(3)\n")
    return ["list", "prior"]


@case("plugin-raises-at-import-list", code=0, words="ZeroDivisionError", stream="warning")
def _(w):
    _plugin(w, "1 / 0\n")
    return ["list", "likelihood"]


@case("plugin-base-exception-in-hook", code=0, words="brokenplug", stream="warning")
def _(w):
    _plugin(
        w,
        """
        import vaezoo

        class Boom(BaseException):
            pass

        @vaezoo.hookimpl
        def vaezoo_register_priors(register):
            raise Boom("no")
        """,
    )
    return ["list", "encoder"]


@case("plugin-misspelt-hook", code=0, words="vaezoo_register_prior", stream="warning")
def _(w):
    _plugin(w, "import vaezoo\n\n@vaezoo.hookimpl\ndef vaezoo_register_prior(register):\n    pass\n")
    return ["list", "decoder"]


@case("plugin-strict-train", words="brokenplug")
def _(w):
    _plugin(w, "import sys\nsys.exit(3)\n")
    w.monkeypatch.setenv("VAEZOO_STRICT_PLUGINS", "1")
    return ["train", *TINY, "--out", str(w.root / "new")]


@case("plugin-component-raises-while-built", words="prior 'boom' from plugin 'brokenplug'")
def _(w):
    _plugin(
        w,
        """
        import vaezoo

        class Boom(vaezoo.Prior):
            def __init__(self, latent_dim):
                raise RuntimeError("boom in prior init")

        @vaezoo.hookimpl
        def vaezoo_register_priors(register):
            register("boom", Boom)
        """,
    )
    return ["train", *TINY, "model.prior.name=boom", "--out", str(w.root / "new")]


@case("plugin-not-installed", code=0, words="nosuchplugin", stream="warning")
def _(w):
    w.monkeypatch.setenv("VAEZOO_PLUGINS", "nosuchplugin")
    return ["list", "prior"]


# the zoo and its cache
simple("zoo-info-unknown", ["zoo", "info", "mlp-bernouli.digits"], "Did you mean 'mlp-bernoulli.digits'")
simple("zoo-download-unknown", ["zoo", "download", "nope"], "nope")
simple("zoo-eval-unknown-name", ["eval", "mlp-bernouli.digits"], "Did you mean 'mlp-bernoulli.digits'")


def _url_entry_plugin(w: World, url: str, sha256: str) -> None:
    entry = {
        "config": {
            "data_shape": [1, 8, 8], "latent_dim": 2, "encoder": {"name": "mlp", "hidden": [16]},
            "decoder": {"name": "mlp", "hidden": [16]}, "prior": "normal", "likelihood": "bernoulli",
        },
        "weights": url,
        "sha256": sha256,
        "meta": {
            "num_params": 1, "file_size": 1,
            "dataset": {"name": "digits", "split": "test", "preprocessing": "none", "data": {"name": "digits"}},
            "metrics": {"neg_elbo": 1.0, "nll": 1.0, "num_samples": 1, "bits_per_dim": 1.0, "num_examples": 1},
            "check": {"split": "test", "first": 1, "num_samples": 1, "seed": 0, "batch_size": 1, "neg_elbo": 1.0, "nll": 1.0},
        },
    }
    _plugin(
        w,
        f"import vaezoo\n\n@vaezoo.hookimpl\ndef vaezoo_register_pretrained(register):\n"
        f"    register('remote-mlp.digits', {entry!r})\n",
        name="remotezoo",
    )


@case("zoo-download-wrong-sha", words="sha256")
def _(w):
    src = w.root / "served.safetensors"
    shutil.copyfile(w.model / "model.safetensors", src)
    _url_entry_plugin(w, src.as_uri(), "0" * 64)
    w.allowed_new += ["home", "home/weights"]  # the cache folder; nothing in it
    return ["zoo", "download", "remote-mlp.digits", "--no-progress"]


@case("zoo-download-missing-file", words="cannot download")
def _(w):
    _url_entry_plugin(w, (w.root / "absent.safetensors").as_uri(), "0" * 64)
    w.allowed_new += ["home", "home/weights"]
    return ["zoo", "download", "remote-mlp.digits", "--no-progress"]


@case("zoo-home-is-a-file", code=3, words="home")
def _(w):
    src = w.root / "served.safetensors"
    shutil.copyfile(w.model / "model.safetensors", src)
    _url_entry_plugin(w, src.as_uri(), hashlib.sha256(src.read_bytes()).hexdigest())
    w.write("home", "not a folder")
    return ["zoo", "download", "remote-mlp.digits", "--no-progress"]


# seeds, counts and names that only look fine
HUGE_SEED = str(2**64 + 1)
simple("cli-eval-seed-huge", ["eval", "{run}", "--seed", HUGE_SEED], "--seed: expected a seed in 0..2**63-1")
simple("cli-sample-seed-huge", ["sample", "{run}", "--out", "s.png", "--seed", HUGE_SEED], "--seed")
simple("cli-compare-seed-negative", ["compare", "{run}", "{model}", "--seed", "-1"], "--seed")
simple("cfg-seed-huge", ["train", f"train.seed={HUGE_SEED}", "--out", NEW], "train.seed: must be at most 2**63-1")
simple("cli-train-out-empty", ["train", *TINY, "--out", ""], "--out: expected a folder for the run")
simple("cli-compare-run-and-its-model", ["compare", "{run}", "{model}"], "is given twice")
simple("cfg-prior-components-absurd", ["train", "model.prior.name=mixture", "model.prior.components=2000000000",
                                       "--out", NEW], "weights")
simple("cfg-vamp-components-absurd", ["train", "model.prior.name=vamp", "model.prior.components=2000000000",
                                      "--out", NEW], "model.prior.components")


@case("eval-run-config-bad-num-samples", words="eval.num_samples: expected an integer >= 1")
def _(w):
    text = (w.run / "config.yaml").read_text()
    (w.run / "config.yaml").write_text(text.replace("num_samples: 4", "num_samples: -5"))
    assert "num_samples: -5" in (w.run / "config.yaml").read_text()
    return ["eval", str(w.run)]


@case("eval-config-not-utf8", words="not a text file (not UTF-8)")
def _(w):
    m = w.model_copy()
    (m / "config.json").write_bytes(b"\x8b\x1f\xff" * 50)
    return ["eval", str(m), "--data", "digits"]


@case("eval-config-nested-too-deeply", words="nested too deeply")
def _(w):
    m = w.model_copy()
    (m / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    return ["eval", str(m), "--data", "digits"]


@case("eval-config-model-null", words='"model" must hold the model\'s config as an object')
def _(w):
    m = w.model_copy()
    w.edit_config(m, lambda c: {**c, "model": None})
    return ["eval", str(m), "--data", "digits"]


@case("eval-config-bad-value-names-the-file", words="config.json: model.latent_dim")
def _(w):
    m = w.model_copy()
    w.edit_config(m, lambda c: {**c, "model": {**c["model"], "latent_dim": "two"}})
    return ["eval", str(m), "--data", "digits"]


@case("cfg-yaml-not-utf8", words="not a text file (not UTF-8)")
def _(w):
    w.write("binary.yaml", b"\x8b\x1f\xff" * 50)
    return ["train", "binary.yaml", "--out", str(w.root / "new")]


@case("eval-weights-nan", words="weights hold NaN or infinite values in")
def _(w):
    import torch
    from safetensors.torch import load_file, save_file

    m = w.model_copy()
    state = load_file(str(m / "model.safetensors"))
    key = sorted(k for k, v in state.items() if v.is_floating_point())[0]
    state[key] = torch.full_like(state[key], float("nan"))
    save_file(state, str(m / "model.safetensors"))
    return ["eval", str(m), "--data", "digits"]


@case("io-sample-out-under-a-file", code=3, words="a file stands where a folder is needed")
def _(w):
    w.write("afile", "x")
    return ["sample", str(w.run), "--out", str(w.root / "afile" / "s.png")]


@case("io-sample-out-is-a-folder", code=3, words="a folder stands where a file is needed")
def _(w):
    (w.root / "grid.png").mkdir()
    return ["sample", str(w.run), "--out", str(w.root / "grid.png")]


@case("push-unknown-model-leaves-no-folder", words="nosuchmodel")
def _(w):
    return ["zoo", "push", "nosuchmodel", "org/x", "--out", str(w.root / "hubout"), "--dry-run"]


@case("push-unloadable-config", words="not published")
def _(w):
    m = w.model_copy()
    w.edit_config(m, lambda c: {**c, "model": {**c["model"], "latent_dim": "two"}})
    return ["zoo", "push", str(m), "org/x", "--out", str(w.root / "hubout"), "--dry-run"]


# I/O failures: a full disk, a read-only file system, permissions, a vanished folder
@pytest.fixture
def small_disk(tmp_path):
    """A 700 kB tmpfs (root only), unmounted afterwards."""
    if not ROOT:
        pytest.skip("mounting a tmpfs needs root (the fault-injection cases cover this)")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=700k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fail_writes(w: World, code: int) -> None:
    """Fault injection: every atomic write's temporary file fails with ``code``."""
    import vaezoo.fileio
    import vaezoo.zoo.download

    def refuse(path, suffix=".tmp"):  # as mkstemp reports it: the temporary name it tried
        raise OSError(code, os.strerror(code), str(Path(path).parent / f".{Path(path).name}.x.tmp"))

    w.monkeypatch.setattr(vaezoo.fileio, "temp_file", refuse)
    w.monkeypatch.setattr(vaezoo.zoo.download, "temp_file", refuse)


@case("io-run-read-only-injected", code=3, words="Read-only file system")
def _(w):
    _fail_writes(w, errno.EROFS)
    w.allowed_new += ["new", "new/metrics.jsonl"]
    return ["train", *TINY, "--out", str(w.root / "new")]


@case("io-run-disk-full-injected", code=3, words="No space left on device")
def _(w):
    _fail_writes(w, errno.ENOSPC)
    w.allowed_new += ["new", "new/metrics.jsonl"]
    return ["train", *TINY, "--out", str(w.root / "new")]


@case("io-resume-permission-injected", code=3, words="Permission denied")
def _(w):
    _fail_writes(w, errno.EACCES)
    return ["train", "--resume", str(w.run), "train.epochs=3"]


@case("io-sample-read-only-injected", code=3, words="s.png: Read-only file system")
def _(w):
    _fail_writes(w, errno.EROFS)
    return ["sample", str(w.run), "--out", str(w.root / "s.png")]


@case("io-cache-read-only-injected", code=3, words="Read-only file system")
def _(w):
    src = w.root / "served.safetensors"
    shutil.copyfile(w.model / "model.safetensors", src)
    _url_entry_plugin(w, src.as_uri(), hashlib.sha256(src.read_bytes()).hexdigest())
    _fail_writes(w, errno.EROFS)
    w.allowed_new += ["home", "home/weights"]
    return ["zoo", "download", "remote-mlp.digits", "--no-progress"]


@case("io-vanished-folder", code=3, words="No such file or directory")
def _(w):
    import vaezoo.training.trainer as trainer

    real = trainer.Trainer.save_checkpoint

    def vanish(self, *args, **kwargs):
        shutil.rmtree(self.run_dir)
        return real(self, *args, **kwargs)

    w.monkeypatch.setattr(trainer.Trainer, "save_checkpoint", vanish)
    w.allowed_new += ["new"]
    return ["train", *TINY, "--out", str(w.root / "new")]


def _png(path: Path, size: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (size, size), 128).save(path)


def _huge_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's first bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


# -- the test -------------------------------------------------------------------------------
def run_main(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse
        return int(exc.code or 0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name, world, capsys):
    c = CASES[name]
    argv = c.setup(world)
    capsys.readouterr()
    before = snapshot(world.root)
    code = run_main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == c.code, err
    assert len(err) == 1, err
    assert err[0].startswith(f"vaezoo: {c.stream}: "), err
    assert "Traceback" not in err[0]
    assert c.words in err[0]
    after = snapshot(world.root)
    changed = [k for k in before if after.get(k) != before[k]]
    added = [k for k in after if k not in before and k not in world.allowed_new]
    assert changed == [] and added == [], (changed, added)
    assert temp_files(world.root) == []


def test_a_recorded_value_the_command_line_replaces_is_not_blamed(world, capsys):
    _edit_run_data(world, name="nope")
    assert run_main(["eval", str(world.run), "-k", "2", "--limit", "8", "--data", "digits"]) == 0
    capsys.readouterr()
    assert run_main(["eval", str(world.run), "-k", "2", "--limit", "8", "--data", "nodata"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("vaezoo: error: data.name: unknown dataset 'nodata'"), err
    # a message about two keys, one of them given on the command line: not the file's fault
    _edit_run_data(world, name="digits", dequantize=True, binarize="none")
    assert run_main(["eval", str(world.run), "-k", "2", "--limit", "8", "--binarize", "dynamic"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("vaezoo: error: data.dequantize: cannot dequantize binarized data"), err


def test_the_battery_is_big_enough():
    assert len(CASES) >= 80


# -- a real tmpfs: full and read-only -----------------------------------------------------
def test_disk_full_during_training_is_one_line_and_resumable(small_disk, capsys):
    out = small_disk / "run"
    code = run_main(["train", *TINY, "model.encoder.hidden=[256]", "model.decoder.hidden=[256]", "--out", str(out)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 3, err
    assert len(err) == 1 and err[0].startswith("vaezoo: error: ") and "No space left on device" in err[0], err
    assert str(small_disk) in err[0]
    assert temp_files(small_disk) == []
    if (out / "checkpoint.safetensors").exists():  # whatever was kept is whole
        from vaezoo.training import checkpoint as ckpt

        ckpt.load(out)


def test_read_only_file_system(small_disk, finished_run, capsys, monkeypatch, tmp_path):
    shutil.copytree(finished_run, small_disk / "run")
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    before = snapshot(small_disk)
    for argv, words in (
        (["train", "--resume", str(small_disk / "run"), "train.epochs=3"], "Read-only file system"),
        (["sample", str(small_disk / "run"), "--out", str(small_disk / "s.png")], "s.png: Read-only file system"),
        (["train", *TINY, "--out", str(small_disk / "new")], "Read-only file system"),
    ):
        code = run_main(argv)
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert code == 3, (argv, err)
        assert len(err) == 1 and err[0].startswith("vaezoo: error: ") and words in err[0], err
    src = tmp_path / "served.safetensors"
    shutil.copyfile(finished_run / "model" / "model.safetensors", src)
    _url_entry_plugin(World(tmp_path / "w", monkeypatch), src.as_uri(), hashlib.sha256(src.read_bytes()).hexdigest())
    monkeypatch.setenv("VAEZOO_HOME", str(small_disk / "home"))
    reset_registry()  # discover the plugin just installed
    code = run_main(["zoo", "download", "remote-mlp.digits", "--no-progress"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 3 and len(err) == 1 and "home: Read-only file system" in err[0], err
    monkeypatch.setenv("VAEZOO_PLUGINS", "")
    reset_registry()
    assert run_main(["eval", str(small_disk / "run"), "-k", "2", "--limit", "8"]) == 0  # reading still works
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vaezoo: warning: the latent figures were not written"), err
    assert snapshot(small_disk) == before


def test_broken_pipe_is_silent(finished_run):
    """``vaezoo zoo list | head -1``: the reader has gone; no traceback, no error line."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from vaezoo.cli import main; sys.exit(main(['list']))"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "VAEZOO_PLUGINS": ""},
    )
    proc.stdout.close()  # the reader goes away before the command writes
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert proc.returncode == 141
