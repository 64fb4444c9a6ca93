"""``check_logger``: the ``vaezoo.Logger`` contract."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..loggers.base import missing_library
from ._common import _Check, _resolve

#: what the check logs: a step, an epoch (with a non-finite number, passed on as None) and an eval record
RECORDS = (
    {"kind": "step", "epoch": 0, "step": 1, "train/loss": 2.5, "lr": 0.001},
    {"kind": "epoch", "epoch": 1, "step": 2, "train/loss": 2.0, "val/elbo": None, "time/total": 0.5},
    {"kind": "eval", "epoch": 1, "step": 2, "test/elbo": -1.5, "test/nll": 1.25},
)
CONFIG = {"model": {"latent_dim": 2, "encoder": {"name": "mlp", "hidden": [8]}}, "train": {"lr": 0.001, "epochs": 1},
          "log": {"loggers": ["jsonl"]}}


@contextmanager
def _in(folder: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def check_logger(logger: Any, **params: Any) -> Any:
    """Check ``logger`` (a registered name plus its parameters, or an instance) against the
    ``vaezoo.Logger`` contract; returns the instance.

    Its library is importable; building it writes nothing; ``start``, ``log_metrics`` (step,
    epoch and eval records, a None among the numbers), ``log_images`` (a PNG), ``log_model`` (a
    model folder) and ``close`` run without error in a temporary run folder; nothing is written
    into the working directory.
    """
    with tempfile.TemporaryDirectory() as tmp:
        cwd, run_dir = Path(tmp) / "cwd", Path(tmp) / "run"
        cwd.mkdir()
        with _in(cwd):
            instance, label, _ = _resolve("logger", logger, {}, params, "check_logger")
        c = _Check("logger", label)
        missing = missing_library(instance)
        if missing:
            c.fail(f"needs the {missing} package, which is not installed; {type(instance).install or 'install it'}")
        if any(cwd.iterdir()):
            c.fail(f"building it wrote {sorted(p.name for p in cwd.iterdir())}; a logger's constructor must do no I/O")
        run_dir.mkdir()
        image, model = run_dir / "images" / "samples_e001.png", run_dir / "model"
        image.parent.mkdir()
        model.mkdir()
        from PIL import Image

        Image.new("RGB", (8, 8), (255, 0, 0)).save(image)
        (model / "config.json").write_text('{"architecture": "vae"}\n')
        with _in(cwd):
            c.call("start(run_dir, config)", instance.start, run_dir, dict(CONFIG))
            try:
                for record in RECORDS:
                    c.call(f"log_metrics({record['kind']} record)", instance.log_metrics, dict(record))
                c.call("log_images(name, path, step)", instance.log_images, "samples", image, 2)
                c.call("log_model(folder)", instance.log_model, model)
            finally:
                c.call("close()", instance.close)
        if any(cwd.iterdir()):
            c.fail(f"wrote {sorted(p.name for p in cwd.iterdir())} into the working directory; write into run_dir")
    return instance
