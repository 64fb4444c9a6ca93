"""What to load: the one place that turns a name or a path into a model.

``from_pretrained(source)`` takes a zoo name (``mlp-bernoulli.digits``), a model folder
(``config.json`` + ``model.safetensors``), a training run's folder (its ``model/``), a
``file://`` URL of either folder, or a Hugging Face Hub model ``hf-hub:ORG/NAME[@REVISION]``
(``vaezoo.hub``: downloaded into huggingface_hub's cache, sha256-verified), or a zoo model's
weights file (the path ``vaezoo zoo download`` prints); ``vaezoo eval``,
``vaezoo sample``, the zoo publisher and ``vaezoo.from_pretrained`` all come through here.
"""

from __future__ import annotations

import os
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from .errors import CheckpointError, did_you_mean
from .hub import HUB_PREFIX, scheme_hint
from .serialization import CONFIG_NAME, WEIGHTS_NAME, load_folder

RUN_MODEL_DIR = "model"  #: where a training run's folder keeps its final model
RUN_CONFIG = "config.yaml"  #: a training run's resolved config


def locate(path: str | os.PathLike[str]) -> tuple[Path, Path | None]:
    """``(model folder, run folder or None)`` for a model folder (``config.json`` +
    ``model.safetensors``) or a training run's folder (its ``model/``).

    ``CheckpointError`` in one line for anything else: a run that has not finished (resume it),
    a model folder missing a file, a folder that is neither, a path that does not exist."""
    path = Path(path)
    wanted = f"a run folder (from vaezoo train) or a model folder ({CONFIG_NAME} + {WEIGHTS_NAME})"
    if not path.is_dir():
        if path.exists():
            raise CheckpointError(f"{path}: is a file, not a folder; expected {wanted}")
        hint = scheme_hint(str(path))  # hf:org/name, hf_hub:org/name, ...: did you mean hf-hub:org/name?
        raise CheckpointError(f"{path}: no such folder; expected {wanted}" + (f".{hint}" if hint else ""))
    if (path / RUN_MODEL_DIR / CONFIG_NAME).is_file() and not (path / CONFIG_NAME).exists():
        model_dir = path / RUN_MODEL_DIR
        if not (model_dir / WEIGHTS_NAME).is_file():
            raise CheckpointError(f"{model_dir}: missing {WEIGHTS_NAME}; a saved model is a folder with {CONFIG_NAME} "
                                  f"and {WEIGHTS_NAME}")
        return model_dir, path
    if (path / CONFIG_NAME).is_file():
        if not (path / WEIGHTS_NAME).is_file():
            raise CheckpointError(f"{path}: missing {WEIGHTS_NAME}; a saved model is a folder with {CONFIG_NAME} and {WEIGHTS_NAME}")
        return path, (path.parent if (path.parent / RUN_CONFIG).is_file() else None)
    if (path / RUN_CONFIG).is_file():
        raise CheckpointError(f"{path}: this run has no final model yet ({RUN_MODEL_DIR}/ is written when training ends); "
                              f"continue it with `vaezoo train --resume {path}`")
    raise CheckpointError(f"{path}: neither a run folder (with {RUN_MODEL_DIR}/) nor a model folder "
                          f"({CONFIG_NAME} + {WEIGHTS_NAME})")


def resolve(source: str | os.PathLike[str]) -> Path | str:
    """The model folder ``source`` means, or the zoo name it is (a string); errors teach.

    Raises ``CheckpointError`` for a file or a folder that holds no model, and
    ``UnknownModelError`` for a name that is neither a path nor a registered zoo model. An
    ``hf-hub:`` name is fetched (``vaezoo.hub.fetch``): its verified folder in the Hub cache.
    """
    text = str(source)
    if text.startswith(HUB_PREFIX):
        from .hub import fetch

        return fetch(text)
    if text.startswith("file://"):
        source = Path(urllib.request.url2pathname(urllib.parse.urlparse(text).path))
    path = Path(source)
    if path.is_dir():
        return locate(path)[0]
    if path.is_file() and path.suffix == ".safetensors":
        return weights_file_entry(path)
    if path.exists():
        raise CheckpointError(f"{path}: expected a folder holding {CONFIG_NAME} and {WEIGHTS_NAME}, got a file")
    if "/" in text or os.sep in text or text.startswith("file:"):
        hint = scheme_hint(text)  # hf:org/name, hf_hub:org/name, ...: did you mean hf-hub:org/name?
        raise CheckpointError(f"{path}: no such folder" + (f".{hint}" if hint else ""))
    from .zoo.api import list_pretrained
    from .zoo.errors import UnknownModelError

    names = list_pretrained()
    if text in names:
        return text
    raise UnknownModelError(
        f"{text!r} is neither a folder nor a pretrained model name.{did_you_mean(text, names)} "
        f"Pretrained models: {', '.join(names) or '(none installed)'} (see 'vaezoo zoo list'); "
        f"a Hugging Face Hub model is named hf-hub:ORG/NAME"
    )


def from_pretrained(source: str | os.PathLike[str], *, map_location: Any = "cpu", **kwargs: Any) -> Any:
    """Load a model from a zoo name, a model folder, a run folder, a ``file://`` URL or an ``hf-hub:`` name (see ``resolve``)."""
    where = resolve(source)
    if isinstance(where, str):
        from .zoo.api import load_pretrained

        return load_pretrained(where, map_location=map_location, **kwargs)
    return load_folder(where, map_location=map_location)


def weights_file_entry(path: str | os.PathLike[str]) -> str:
    """The zoo model whose weights file ``path`` is (the path ``vaezoo zoo download`` prints),
    matched by its full sha256; ``CheckpointError`` for a file that is no entry's."""
    from .zoo.api import get_entry, list_pretrained
    from .zoo.download import sha256_file

    path = Path(path)
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    for name in list_pretrained():
        if get_entry(name).sha256 == digest:
            return name
    raise CheckpointError(
        f"{path}: a weights file that is no zoo model's (sha256 {digest[:12]}...); a weights file "
        f"alone has no config: pass the folder holding {CONFIG_NAME} and {WEIGHTS_NAME}"
    )
