"""Models on the Hugging Face Hub: ``hf-hub:ORG/NAME[@REVISION]`` to load, ``push_to_hub`` to publish.

A vaezoo repository on the Hub holds three files: ``config.json`` (``save_pretrained``'s,
plus ``weights: {file, sha256, size}`` and, when known, ``data``: the ``DataConfig`` the
model was measured on), ``model.safetensors`` and ``README.md`` (the model card: YAML front
matter with ``library_name: vaezoo``, tags, datasets, license and the metrics as
``model-index``, then the recipe, the preprocessing, how to load it, the measured numbers).

Loading (``fetch``) downloads ``config.json`` at the revision asked for (default ``main``)
through ``huggingface_hub`` (its cache, ``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_OFFLINE``),
then ``model.safetensors`` at the very commit that ``config.json`` came from, and checks
the weights' full sha256 against ``config.json`` before anything is loaded.

``huggingface_hub`` is optional (``pip install 'vaezoo[hub]'``); this module imports it
only when a Hub name is used. Errors are one line: ``HubError`` (a ``VaezooError``, CLI exit
2) for a bad name, a missing repository, revision or file, a sha256 mismatch, a missing
``huggingface_hub``; ``HubUnavailableError`` (an ``OSError``, exit 3) when the Hub cannot be
reached, or ``HF_HUB_OFFLINE`` is set, and the files are not in the cache.

The package: ``names`` (Hub names, the repository's files, the errors), ``download``
(``fetch``), ``folder`` (``build_folder``: what is published), ``card`` (the model card),
``push`` (``push_to_hub``, ``vaezoo zoo push``).
"""

from __future__ import annotations

from .card import card_metadata, model_card, read_card_metadata
from .download import fetch, offline_mode, recorded_data, recorded_sha256
from .folder import build_folder, preprocessing_words
from .names import (CARD_NAME, COMMIT_PATTERN, CONFIG_NAME, FILES, HUB_DATASETS, HUB_PREFIX, INSTALL_HINT,
                    REPO_ID_PATTERN, REVISION_PATTERN, SYNTAX, WEIGHTS_NAME, HubChecksumError, HubError,
                    HubUnavailableError, check_repo_id, is_hub_name, parse_name, scheme_hint)
from .push import add_push_parser, push_to_hub, run_push, upload_folder

__all__ = [
    "CARD_NAME", "COMMIT_PATTERN", "CONFIG_NAME", "FILES", "HUB_DATASETS", "HUB_PREFIX", "INSTALL_HINT", "REPO_ID_PATTERN",
    "REVISION_PATTERN", "SYNTAX", "WEIGHTS_NAME", "HubChecksumError", "HubError", "HubUnavailableError", "add_push_parser",
    "build_folder", "card_metadata", "check_repo_id", "fetch", "is_hub_name", "model_card", "offline_mode", "parse_name",
    "preprocessing_words", "push_to_hub", "read_card_metadata", "recorded_data", "recorded_sha256", "run_push",
    "scheme_hint", "upload_folder",
]
