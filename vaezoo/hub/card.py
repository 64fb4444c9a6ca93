"""The model card (``README.md``): YAML front matter the Hub reads, then the recipe, the
preprocessing, how to load the model and the measured numbers."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .names import CARD_NAME, CONFIG_NAME, HUB_DATASETS, HUB_PREFIX, WEIGHTS_NAME


def card_metadata(info: Mapping[str, Any]) -> dict[str, Any]:
    """The card's YAML front matter: library_name, tags, datasets, license, pipeline_tag, model-index."""
    config = info.get("config") or {}
    meta: dict[str, Any] = {"library_name": "vaezoo"}
    license = info.get("license")
    if isinstance(license, str) and license:
        simple = re.fullmatch(r"[A-Za-z0-9.+\-]+", license)
        meta["license"] = license.lower() if simple else "other"
        if not simple:
            meta["license_name"] = license
    tags = ["vaezoo", "vae", "variational-autoencoder", "safetensors"]
    for kind in ("architecture", "prior", "likelihood"):
        section = config.get(kind, "vae" if kind == "architecture" else None)
        value = section.get("name") if isinstance(section, dict) else section
        if isinstance(value, str) and value not in tags:
            tags.append(value)
    meta["tags"] = tags
    dataset = info.get("dataset") or {}
    data_name = dataset.get("name")
    if data_name:
        meta["datasets"] = [HUB_DATASETS.get(data_name, data_name)]
    images = len(config.get("data_shape") or ()) == 3
    if images:
        meta["pipeline_tag"] = "unconditional-image-generation"
    metrics = info.get("metrics")
    if metrics and data_name:
        k = metrics.get("num_samples")
        rows = [{"type": "nll", "name": f"NLL (nats{f', K={k} importance samples' if k else ''})",
                 "value": _round(metrics["nll"])},
                {"type": "neg_elbo", "name": "negative ELBO (nats)", "value": _round(metrics["neg_elbo"])},
                {"type": "bits_per_dim", "name": "bits/dim", "value": _round(metrics["bits_per_dim"])}]
        task = ({"type": "unconditional-image-generation", "name": "Density estimation"} if images
                else {"type": "density-estimation", "name": "Density estimation"})
        meta["model-index"] = [{
            "name": info.get("title") or "vaezoo model",
            "results": [{"task": task,
                         "dataset": {"name": data_name, "type": HUB_DATASETS.get(data_name, data_name),
                                     "split": dataset.get("split", "test")},
                         "metrics": rows}],
        }]
    return meta


def _round(value: Any) -> float:
    return round(float(value), 4)


def _num(value: Any, digits: int = 4) -> str:
    return f"{float(value):.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def model_card(info: Mapping[str, Any], *, repo_id: str | None = None) -> str:
    """The ``README.md`` of a Hub repository: YAML front matter (``card_metadata``), then the body."""
    import yaml

    front = yaml.safe_dump(card_metadata(info), sort_keys=False, allow_unicode=True, width=1000)
    name = f"{HUB_PREFIX}{repo_id}" if repo_id else f"{HUB_PREFIX}ORG/NAME"
    title = info.get("title") or (repo_id.split("/")[1] if repo_id else "vaezoo model")
    config = info.get("config") or {}
    saved = info.get("saved") or {}
    out = ["---", front.rstrip("\n"), "---", "", f"# {title}", ""]
    out += [str(info.get("description") or "A variational autoencoder made with vaezoo."), ""]

    out += ["## Model", ""]
    out.append(f"- architecture: `{config.get('architecture', 'vae')}`; data shape `{config.get('data_shape')}`, "
               f"latent dimension `{config.get('latent_dim')}`")
    from ..kinds import KINDS

    for kind in KINDS:
        if kind in config:
            out.append(f"- {kind}: `{json.dumps(config[kind], sort_keys=True)}`")
    if info.get("num_params"):
        out.append(f"- parameters: {int(info['num_params']):,}")
    weights = saved.get("weights") or {}
    stored = f", stored in {info['storage_dtype']}" if info.get("storage_dtype") else ""
    out.append(f"- weights: `{WEIGHTS_NAME}`{stored}, {weights.get('size', '?'):,} bytes, sha256 "
               f"`{weights.get('sha256', '?')}` (recorded in `{CONFIG_NAME}`, checked before every load)"
               if isinstance(weights.get("size"), int) else f"- weights: `{WEIGHTS_NAME}`{stored}")
    if info.get("zoo"):
        out.append(f"- the vaezoo zoo entry `{info['zoo']}`, byte for byte (`vaezoo zoo info {info['zoo']}`)")
    if info.get("changed_from"):
        out.append(f"- loaded from the zoo entry `{info['changed_from']}`, then changed: its measured numbers do "
                   f"not apply")
    out.append("")

    condition = config.get("condition") if isinstance(config.get("condition"), Mapping) else {}
    labelled = "classes" in condition
    y = "3" if labelled else "cov" if condition else None
    sample = (f"x = model.sample(16, y={y})  # 16 samples given y ({'class 3' if labelled else 'cov: (16, C) covariates'})"
              if y else "x = model.sample(16)                   # 16 samples, shape (16, *data_shape)")
    score = (f"log_px = model.log_likelihood(x, num_samples=1000, y={y})  # importance-sampled log p(x|y), nats" if y else
             "log_px = model.log_likelihood(x, num_samples=1000)  # importance-sampled log p(x), nats")
    out += ["## How to load", "", "```python", "import vaezoo  # pip install 'vaezoo[hub]'", "",
            f"model = vaezoo.from_pretrained({name!r})  # or {name + '@REVISION'!r}", sample, score, "```", "",
            "On the command line:", "", "```bash", f"vaezoo eval {name} --num-samples 5000",
            f"vaezoo sample {name} --n 64{' --label 3' if labelled else ''} --out samples.png", "```", "",
            "huggingface_hub's cache, `HF_TOKEN` and `HF_HUB_OFFLINE=1` (use the cache only) apply.", ""]

    metrics = info.get("metrics")
    dataset = info.get("dataset") or {}
    out += ["## Measured quality", ""]
    if metrics:
        split = dataset.get("split", "test")
        k = metrics.get("num_samples")
        nll = _num(metrics["nll"])
        if isinstance(metrics.get("nll_se"), (int, float)):
            nll += f" ± {_num(metrics['nll_se'])} (standard error over the examples)"
        how = ", ".join(([f"K={k}"] if k else []) + ([f"seed {metrics['seed']}"] if "seed" in metrics else []))
        out += ["| metric | value |", "| --- | --- |",
                f"| NLL, importance-sampled{f' ({how})' if how else ''} | {nll} nats |",
                f"| negative ELBO | {_num(metrics['neg_elbo'])} nats |",
                f"| bits/dim | {_num(metrics['bits_per_dim'])} |"]
        conv = metrics.get("convergence")
        if isinstance(conv, dict) and "nll" in conv:
            out.append(f"| NLL again with K={conv.get('num_samples')}, seed {conv.get('seed')} (convergence check) "
                       f"| {_num(conv['nll'])} nats |")
        reference = info.get("reference")
        if isinstance(reference, dict) and "nll" in reference:
            out.append(f"| published NLL of {reference.get('model')} ({reference.get('source')}) "
                       f"| {_num(reference['nll'])} nats |")
        count = f"{metrics['num_examples']:,} " if isinstance(metrics.get("num_examples"), int) else ""
        out += ["", f"Nats per example on the {count}examples of the {dataset.get('name')} {split} split, "
                    f"measured on these weights"
                    + (f" by vaezoo {info['vaezoo_version']}" if info.get("vaezoo_version") else "") + ".", ""]
    else:
        out += ["Not measured: no numbers were recorded with this model.", ""]

    data = info.get("data")
    if dataset or data:
        out += ["## Data and preprocessing", ""]
        if dataset.get("name"):
            out.append(f"Dataset `{dataset['name']}`" + (f", {dataset['split']} split" if dataset.get("split") else "")
                       + (f": {dataset['preprocessing']}." if dataset.get("preprocessing") else "."))
        if data:
            out += ["", f"The data config (`data` in `{CONFIG_NAME}`; `vaezoo eval` measures on it):", "",
                    "```yaml", dump_yaml(dict(data)).rstrip("\n"), "```"]
        out.append("")

    recipe, text, training = info.get("recipe"), info.get("recipe_text"), info.get("training") or {}
    if recipe or text or training:
        out += ["## Recipe", ""]
        if recipe:
            out.append(f"Trained with `vaezoo train {recipe}` (the recipe in the vaezoo repository):")
        elif text:
            out.append("Trained with `vaezoo train` on this configuration (the run's `config.yaml`):")
        if text:
            out += ["", "```yaml", text.rstrip("\n"), "```"]
        parts = []
        if training.get("epochs") is not None:
            parts.append(f"{training['epochs']} epochs")
        if training.get("wall_time_s") is not None:
            parts.append(f"{float(training['wall_time_s']):,.0f} s of training")
        if training.get("threads"):
            parts.append(f"{training['threads']} thread{'s' if training['threads'] != 1 else ''}")
        if training.get("hardware"):
            parts.append(f"hardware: {training['hardware']}")
        if parts:
            out += ["", "Training: " + ", ".join(parts) + "."]
        out.append("")

    if info.get("citation"):
        out += ["## Citation", "", str(info["citation"]), ""]
    out += ["## Files", "", f"- `{CONFIG_NAME}`: the model config vaezoo builds it from, the weights' sha256"
            + (" and the data config" if data else ""), f"- `{WEIGHTS_NAME}`: the weights (safetensors, no pickle)",
            f"- `{CARD_NAME}`: this card", ""]
    return "\n".join(out)


def read_card_metadata(text: str) -> dict[str, Any]:
    """The YAML front matter of a model card as a mapping (empty when there is none)."""
    import yaml

    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---\n", 4)
    if end < 0:
        return {}
    found = yaml.safe_load(text[4:end])
    return found if isinstance(found, dict) else {}


def dump_yaml(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)
