"""Honest units and model cards of zoo entries: what an NLL is a number of, never mixed in one
column; the card fields and their one-line errors; the standard error of the one measurement.

Needs no dataset beyond scikit-learn's digits and trains nothing; the publisher's records are
tested in tests/test_zoo.py (its tiny published entry).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import warnings

import pytest
import torch
from torch import nn

from vaezoo.data import load_data
from vaezoo.data.config import BINARIZE_MODES
from vaezoo.errors import DataError
from vaezoo.likelihoods import BUILTIN_LIKELIHOODS
from vaezoo.measurement import measure, num_bins_of
from vaezoo.registry import create
from vaezoo.zoo import catalogue, docs
from vaezoo.zoo.api import get_entry, list_pretrained
from vaezoo.zoo.cli import add_zoo_parser
from vaezoo.zoo.entry import CARD_FIELDS, PretrainedEntry, missing_card_fields
from vaezoo.zoo.errors import InvalidEntryError, ZooError
from vaezoo.zoo.units import KINDS, Unit, coarser_levels, entry_unit, unit_of

LIKELIHOOD_PARAMS = [(name, {}) for name in BUILTIN_LIKELIHOODS] + [("discretized_logistic", {"bits": 5})]


def zoo_cli(capsys, *argv):
    parser = argparse.ArgumentParser(prog="vaezoo")
    add_zoo_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["zoo", *argv])
    capsys.readouterr()
    assert args.func(args) == 0
    return capsys.readouterr().out


# -- the kind of an NLL ---------------------------------------------------------------------------
@pytest.mark.parametrize("likelihood, params", LIKELIHOOD_PARAMS, ids=lambda v: v if isinstance(v, str) else str(v or ""))
def test_unit_agrees_with_the_data_pipeline_for_every_builtin_combination(likelihood, params):
    """For every binarization/dequantization the data pipeline accepts, the unit says what
    load_data prepared: a mass on its bins, or a density (with its dequantization bins)."""
    lik = create("likelihood", likelihood, **params)
    config = {"likelihood": {"name": likelihood, **params}}
    accepted = 0
    for binarize in BINARIZE_MODES:
        for dequantize in (False, True):
            data = {"name": "digits", "binarize": binarize, "dequantize": dequantize, "bits": params.get("bits", 8)}
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    splits = load_data(data, likelihood=lik)
            except DataError:
                continue  # a combination the pipeline refuses is never measured
            accepted += 1
            unit = unit_of(config, data)
            assert unit.is_mass == lik.discrete
            if lik.discrete:
                assert unit.num_bins == splits.num_bins
                assert unit.kind == ("binary" if getattr(lik, "bits", None) is None else "bins")
                values = torch.unique(splits.test.x)
                assert len(values) <= unit.num_bins
            else:
                assert unit.kind == "density" and unit.num_bins == splits.dequantized_bins
                if dequantize:
                    assert num_bins_of(splits) == unit.num_bins  # the bits/dim measurement adds D ln of these bins
    assert accepted > 0, f"{likelihood}: no combination accepted"


@pytest.mark.parametrize("likelihood, binarize, dequantize, key, header", [
    ("bernoulli", "static", False, "binary", "NLL (nats, mass on binarized pixels)"),
    ("bernoulli", "dynamic", False, "binary", "NLL (nats, mass on binarized pixels)"),
    ("discretized_logistic", "none", False, "8-bit", "NLL (nats, mass on 8-bit bins)"),
    ("discretized_logistic_mixture", "none", False, "8-bit", "NLL (nats, mass on 8-bit bins)"),
    ("gaussian", "none", True, "density", "−log density (nats)"),
    ("laplace", "none", True, "density", "−log density (nats)"),
    ("continuous_bernoulli", "none", False, "density", "−log density (nats)"),
    ("continuous_bernoulli", "static", False, "density", "−log density (nats)"),
])
def test_unit_names_and_headers(likelihood, binarize, dequantize, key, header):
    unit = unit_of({"likelihood": likelihood}, {"name": "digits", "binarize": binarize, "dequantize": dequantize})
    assert unit.key == key and unit.nll_header == header
    if unit.is_mass:
        assert unit.bits_header == "bits/dim"
    elif dequantize:
        assert "upper bound" in unit.bits_header and "D ln 256" in unit.bits_header
    else:
        assert unit.bits_header is None  # no dequantization: no bound to show


def test_unit_of_a_likelihood_that_cannot_be_built_is_one_line():
    with pytest.raises(ZooError, match=r"^config\.likelihood: cannot tell what its NLL measures: .*nonexistent") as info:
        unit_of({"likelihood": {"name": "nonexistent"}}, {"name": "digits"})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", sorted(catalogue.read_catalogue()))
def test_builtin_bits_per_dim_is_what_its_unit_says(name):
    """The recorded bits/dim is NLL / (D ln 2) for a mass, (NLL + D ln bins) / (D ln 2) for a density."""
    fields = catalogue.read_catalogue()[name]
    unit = entry_unit(fields)
    m, d = fields["meta"]["metrics"], math.prod(fields["config"]["data_shape"])
    extra = 0.0 if unit.is_mass else d * math.log(unit.num_bins)
    assert m["bits_per_dim"] == pytest.approx((m["nll"] + extra) / (d * math.log(2)), rel=1e-9)


def test_digits_densities_state_their_17_levels():
    """digits' values 0..16 scaled by 1/16: 17 levels, fewer than the 256 dequantization bins."""
    from vaezoo.data import read_source

    raw = read_source({"name": "digits"})
    levels = int(raw.train_x.max()) + 1
    density = Unit("density", 256)
    assert coarser_levels(density, {"name": "digits"}) == levels == 17
    assert coarser_levels(Unit("density", 16), {"name": "digits"}) is None  # bins coarser than the levels
    assert coarser_levels(Unit("binary", 2), {"name": "digits"}) is None
    assert coarser_levels(density, {"name": "fashion_mnist"}) is None  # 8-bit images: never read here
    # the dequantized test values of the 17 levels fall into 17 distinct 8-bit bins (what the note relies on)
    splits = load_data({"name": "digits", "dequantize": True}, likelihood=create("likelihood", "gaussian"))
    bins = torch.unique(torch.floor(splits.test.x * 256))
    assert len(bins) == len(torch.unique(torch.round(splits.test.x * 16)))


# -- grouped output: one kind per column -------------------------------------------------------------
def _units_by_name():
    return {name: entry_unit(get_entry(name)) for name in list_pretrained()}


def test_list_groups_never_mix_kinds(capsys):
    units = _units_by_name()
    assert {u.kind for u in units.values()} == set(KINDS), "the built-in catalogue has every kind"
    rows = json.loads(zoo_cli(capsys, "list", "--json"))
    assert {r["name"]: (r["unit"], r["kind"], r["num_bins"]) for r in rows} == \
        {n: (u.key, u.kind, u.num_bins) for n, u in units.items()}
    assert all(r["bits_per_dim_is_upper_bound"] == (r["kind"] == "density") for r in rows)
    text = zoo_cli(capsys, "list")
    blocks = text.strip().split("\n\n")
    seen = []
    for block in blocks:
        title, header, *lines = block.splitlines()
        assert title.startswith("== ")
        names = [line.split()[0] for line in lines]
        kinds = {units[n] for n in names}
        assert len(kinds) == 1, f"one group mixes {kinds}"
        (unit,) = kinds
        seen.append(unit)
        if unit.is_mass:
            assert " NLL " in header and "DENS" not in header and "density" not in title
        else:
            assert "-LOG DENS" in header and " NLL " not in header and "not a mass" in title
            assert ("upper bound" in title) == bool(unit.num_bins)
    assert len(seen) == len(set(seen)) and set(seen) == set(units.values()), "each unit in exactly one group"


def test_docs_tables_never_mix_kinds():
    entries = catalogue.read_catalogue()
    units = {name: entry_unit(fields) for name, fields in entries.items()}
    text = docs.render_table(entries)
    sections = re.split(r"^### ", text, flags=re.M)[1:]
    seen = []
    for section in sections:
        title = section.splitlines()[0]
        tables = [line for line in section.splitlines() if line.startswith("| ")]
        header, rows = tables[0], tables[1:]
        names = [re.search(r"`([^`]+)`", row).group(1) for row in rows]
        if title in ("Model cards",):
            assert sorted(names) == sorted(entries)
            continue
        if title == "Reproduction":  # one table per unit, its header naming the unit
            for table in section.split("\n\n"):
                lines = [line for line in table.splitlines() if line.startswith("| ")]
                if not lines:
                    continue
                group = {units[re.search(r"`([^`]+)`", row).group(1)] for row in lines[1:]}
                assert len(group) == 1 and next(iter(group)).nll_header in lines[0]
            continue
        group = {units[n] for n in names}
        assert len(group) == 1, f"{title}: mixes {group}"
        (unit,) = group
        seen.append(unit)
        assert title == unit.title and unit.nll_header in header
        if unit.is_mass:
            assert "density" not in header
        else:
            assert "NLL (nats" not in header and "upper bound" in header
    assert sorted(seen, key=Unit.sort_key) == seen and set(seen) == set(units.values())
    assert "17 grey levels" in text  # the digits densities


# -- the model card -------------------------------------------------------------------------------------
MINIMAL = {
    "name": "third-party.digits",
    "config": {"data_shape": [1, 8, 8], "latent_dim": 2, "encoder": {"name": "mlp"}, "decoder": {"name": "mlp"},
               "prior": "normal", "likelihood": "bernoulli"},
    "weights": "https://example.org/w.safetensors",
    "sha256": "0" * 64,
    "meta": {"num_params": 1, "file_size": 1,
             "dataset": {"name": "digits", "split": "test", "preprocessing": "none", "data": {"name": "digits"}},
             "metrics": {"neg_elbo": 1.0, "nll": 1.0, "num_samples": 1, "bits_per_dim": 1.0, "num_examples": 1},
             "check": {"split": "test", "first": 1, "num_samples": 1, "seed": 0, "batch_size": 1, "neg_elbo": 1.0,
                       "nll": 1.0}},
}


def test_third_party_entries_may_omit_the_card():
    entry = PretrainedEntry.from_mapping(MINIMAL)
    assert missing_card_fields(entry.meta) == [f for f in CARD_FIELDS if f != "dataset.preprocessing"]


@pytest.mark.parametrize("path, value", [
    ("description", "One.\nTwo."), ("license", "MIT license"), ("license", ""), ("citation", ["a", "b"]),
    ("vaezoo_version", "v1"), ("training.hardware", "cpu at ~/x"), ("training.hardware", "C:\\cpu"),
    ("training.threads", 1.5), ("metrics.nll_se", -1.0), ("reference.nll", None),
])
def test_card_errors_are_one_line_naming_the_field(path, value):
    fields = json.loads(json.dumps(MINIMAL))
    target = fields["meta"]
    *parents, last = path.split(".")
    for p in parents:
        target = target.setdefault(p, {"nll": 1.0, "model": "m", "source": "s"} if p == "reference" else {})
    target[last] = value
    with pytest.raises(InvalidEntryError) as info:
        PretrainedEntry.from_mapping(fields)
    message = str(info.value)
    assert "\n" not in message and "'third-party.digits'" in message
    assert f": meta.{path}: " in message, message


def test_builtin_cards_are_valid_and_cite_their_papers():
    papers = {"normal": "Kingma & Welling", "vamp": "Tomczak & Welling", "discretized_logistic": "Salimans",
              "discretized_logistic_mixture": "Salimans"}
    for name, fields in catalogue.read_catalogue().items():
        entry = PretrainedEntry.from_mapping(fields, name=name)
        assert missing_card_fields(entry.meta) == [], name
        cfg = entry.config
        for part in (cfg["prior"]["name"], cfg["likelihood"]["name"]):
            if part in papers:
                assert papers[part] in entry.meta["citation"], (name, part)
        assert "seed" in entry.meta["dataset"]["preprocessing"] or cfg["likelihood"]["name"].startswith("discretized")


def test_info_shows_the_card(capsys):
    for name in ("mlp-gaussian.digits", "mlp-bernoulli.fashion_mnist"):
        entry = get_entry(name)
        out = zoo_cli(capsys, "info", name)
        card = out.split("  weights:")[0]
        for key in ("description", "license", "citation"):
            assert f"{key}:" in card and entry.meta[key] in card
        assert entry.meta["dataset"]["preprocessing"] in card
        t = entry.meta["training"]
        assert f"{t['epochs']} epochs" in card and f"hardware: {t['hardware']}" in card
        if entry_unit(entry).is_mass:
            assert "NLL, a probability mass on binarized pixels" in card and "upper bound" not in card
            ref = entry.meta["reference"]
            assert f"ours {entry.metrics['nll'] - ref['nll']:+.2f}" in card
        else:
            assert "-log density (a density value, not a probability mass)" in card
            assert f"<= {entry.metrics['bits_per_dim']:.4f}, an upper bound" in card and "17 grey levels" in card
    info = json.loads(zoo_cli(capsys, "info", "mlp-dlogistic.digits", "--json"))
    assert info["unit"] == {"key": "8-bit", "kind": "bins", "num_bins": 256, "what": "mass on 8-bit bins"}


# -- the standard error of the one measurement -------------------------------------------------------------
class KnownValues(nn.Module):
    """A stand-in model whose log-likelihood of example i is a known number."""

    data_shape = (1,)

    class likelihood:  # noqa: N801
        discrete = True

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def elbo(self, x):
        return {"elbo": -x[:, 0] - 1.0}

    def log_likelihood(self, x, num_samples):
        return -x[:, 0] + 0.0 * torch.randn(len(x))  # draws like a sampler, value independent of it


def test_measure_reports_the_standard_error_of_the_mean():
    values = torch.tensor([1.0, 2.0, 4.0, 8.0, 16.0, 3.5, 2.25])
    out = measure(KnownValues(), values[:, None], num_samples=3, batch_size=3)
    assert out["nll"] == pytest.approx(float(values.double().mean()))
    expected = float(values.double().std()) / math.sqrt(len(values))  # sample std (N - 1) / sqrt(N)
    assert out["nll_se"] == pytest.approx(expected, rel=1e-12)
    assert measure(KnownValues(), values[:1, None], num_samples=3)["nll_se"] is None
