"""Hugging Face Hub support (vaezoo.hub): ``hf-hub:`` names load, ``push_to_hub`` publishes.

Nothing here touches the network: huggingface_hub talks to ``FakeHub``, a loopback server
that answers its download and commit requests (tests/fake_hub.py), with a cache of each
test's own. The model card and the folder are also checked with no server at all.
"""

from __future__ import annotations

import itertools
import json
import sys

import pytest
import torch
import yaml
from fake_hub import FakeHub

import vaezoo
from vaezoo import hub as vhub
from vaezoo.cli import main
from vaezoo.hub import FILES, HubChecksumError, HubError, HubUnavailableError, build_folder, read_card_metadata
from vaezoo.zoo.api import get_entry, load_pretrained
from vaezoo.zoo.download import sha256_file

ZOO = "mlp-bernoulli.digits"
OTHER = "mlp-gaussian.digits"
_ids = itertools.count()


@pytest.fixture(scope="module")
def hub():
    server = FakeHub()
    yield server
    server.close()


@pytest.fixture
def hf(hub, tmp_path, monkeypatch):
    """huggingface_hub pointed at the loopback hub (env and its constants), with an empty cache."""
    cache = tmp_path / "hf-home"
    env = {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(cache), "HF_HUB_CACHE": str(cache / "hub"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_TOKEN": hub.token}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    huggingface_hub = pytest.importorskip("huggingface_hub")
    import huggingface_hub.constants as constants
    monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return huggingface_hub


def new_repo(stem: str = "model") -> str:
    return f"someone/{stem}-{next(_ids)}"


def publish(hub: FakeHub, repo_id: str, source, tmp_path, branch: str = "main", **override: bytes) -> str:
    """Put the files ``build_folder(source)`` writes (some replaced by ``override``) on the hub; the commit hash."""
    folder = build_folder(source, tmp_path / f"published-{next(_ids)}", repo_id=repo_id)
    files = {name: (folder / name).read_bytes() for name in FILES}
    files.update({name.replace("__", "."): data for name, data in override.items()})
    return hub.commit(repo_id, files, branch=branch)


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("vaezoo: error: ") and "Traceback" not in err[0]
    return err[0]


# -- the folder and its card, no network ---------------------------------------------------
def test_the_folder_of_a_zoo_entry_and_its_card(tmp_path):
    entry = get_entry(ZOO)
    folder = build_folder(ZOO, tmp_path / "out", repo_id="someone/digits")
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)  # no temporary file left behind
    saved = json.loads((folder / "config.json").read_text())
    assert saved["model"] == entry.config
    assert saved["weights"]["sha256"] == sha256_file(folder / "model.safetensors") == entry.sha256  # byte for byte
    assert saved["data"] == entry.data_config

    card = (folder / "README.md").read_text()
    meta = read_card_metadata(card)
    assert meta["library_name"] == "vaezoo"
    assert "vaezoo" in meta["tags"] and "bernoulli" in meta["tags"]
    assert meta["datasets"] == ["digits"]
    if "license" in entry.meta:
        assert meta["license"] == entry.meta["license"].lower()
    (result,) = meta["model-index"][0]["results"]
    assert result["dataset"]["split"] == "test"
    values = {m["type"]: m["value"] for m in result["metrics"]}
    assert values["nll"] == pytest.approx(entry.metrics["nll"], abs=1e-4)
    assert values["neg_elbo"] == pytest.approx(entry.metrics["neg_elbo"], abs=1e-4)
    assert values["bits_per_dim"] == pytest.approx(entry.metrics["bits_per_dim"], abs=1e-4)
    body = card.split("\n---\n", 1)[1]
    assert "vaezoo.from_pretrained('hf-hub:someone/digits')" in body
    assert "vaezoo eval hf-hub:someone/digits" in body
    assert entry.meta["dataset"]["preprocessing"] in body
    assert entry.meta["recipe"] in body
    assert f"{entry.metrics['nll']:.4f}" in body and f"{entry.metrics['bits_per_dim']:.4f}" in body
    assert entry.sha256 in body


def test_the_card_tolerates_an_entry_without_the_optional_fields(tmp_path):
    data = get_entry(ZOO).to_dict()
    for key in ("description", "license", "citation", "vaezoo_version", "training", "recipe", "reference"):
        data["meta"].pop(key, None)
    data["meta"]["metrics"]["nll_se"] = 0.125
    entry = vaezoo.zoo.PretrainedEntry.from_mapping(data)
    card = (build_folder(entry, tmp_path / "out") / "README.md").read_text()
    meta = read_card_metadata(card)
    assert "license" not in meta and meta["library_name"] == "vaezoo"
    assert meta["model-index"][0]["results"][0]["metrics"]
    assert "± 0.1250" in card
    assert "hf-hub:ORG/NAME" in card  # no repository given: the loading example says what to fill in
    assert "## Recipe" not in card and "## Citation" not in card


def test_a_license_that_is_an_expression_becomes_other_with_its_name(tmp_path):
    card = (build_folder(ZOO, tmp_path / "out", license="MIT OR Apache-2.0") / "README.md").read_text()
    meta = read_card_metadata(card)
    assert meta["license"] == "other" and meta["license_name"] == "MIT OR Apache-2.0"


def test_a_run_folder_publishes_its_eval_numbers_data_and_recipe(tmp_path):
    model = load_pretrained(ZOO)
    run = tmp_path / "run"
    model.save_pretrained(str(run / "model"))
    data = {"name": "digits", "binarize": "dynamic", "root": "/home/someone/data"}
    (run / "config.yaml").write_text(yaml.safe_dump({"data": data, "train": {"epochs": 3, "num_threads": 2}}))
    (run / "eval.json").write_text(json.dumps({"elbo": -25.5, "nll": 24.25, "bits_per_dim": 0.55,
                                               "num_examples": 359, "num_samples": 100, "split": "test"}))
    folder = build_folder(run, tmp_path / "out", repo_id="someone/run")
    saved = json.loads((folder / "config.json").read_text())
    assert saved["data"]["name"] == "digits" and saved["data"]["root"] is None  # no path of this machine
    assert saved["weights"]["sha256"] == sha256_file(run / "model" / "model.safetensors")
    card = (folder / "README.md").read_text()
    values = {m["type"]: m["value"] for m in read_card_metadata(card)["model-index"][0]["results"][0]["metrics"]}
    assert values == {"nll": 24.25, "neg_elbo": 25.5, "bits_per_dim": 0.55}
    assert "binarized anew every batch" in card and "num_threads: 2" in card and "/home/someone" not in card


def test_the_folder_is_refused_when_the_target_holds_other_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(HubError, match="not empty .*notes.txt"):
        build_folder(ZOO, out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_a_failure_while_writing_leaves_no_config_json_and_no_temporary_files(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(vhub.folder, "model_card", broken)  # what build_folder calls
    out = tmp_path / "out"
    with pytest.raises(OSError, match="No space"):
        build_folder(ZOO, out)
    assert list(out.iterdir()) == []  # config.json is written last: no half folder that looks complete


@pytest.mark.parametrize("name, words", [
    ("hf-hub:", "no repository given"),
    ("hf-hub:digits", "expected ORG/NAME"),
    ("hf-hub:a/b/c", "is not a Hub repository id"),
    ("hf-hub:a--b/c", "is not a Hub repository id"),
    ("hf-hub:a/b@", "is not a branch, tag or commit hash"),
    ("hf-hub:a/b@x y", "is not a branch, tag or commit hash"),
])
def test_a_bad_hub_name_is_one_line_saying_what_is_allowed(name, words):
    with pytest.raises(HubError, match=words) as info:
        vaezoo.from_pretrained(name)
    assert "\n" not in str(info.value)


def test_a_near_miss_scheme_suggests_hf_hub(capsys):
    assert main(["sample", "hf:someone/digits", "--out", "x.png"]) == 2
    assert "Did you mean 'hf-hub:someone/digits'?" in one_error_line(capsys)


def test_without_huggingface_hub_a_hub_name_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import raises ImportError
    with pytest.raises(HubError, match=r"pip install 'vaezoo\[hub\]'"):
        vaezoo.from_pretrained("hf-hub:someone/digits")
    assert main(["eval", "hf-hub:someone/digits"]) == 2
    assert "pip install 'vaezoo[hub]'" in one_error_line(capsys)


# -- loading from the (loopback) Hub -------------------------------------------------------
def test_load_by_name_and_by_revision(hf, hub, tmp_path):
    repo = new_repo()
    first = publish(hub, repo, ZOO, tmp_path)
    hub.repos[repo]["refs"]["v1"] = first  # a tag
    second = publish(hub, repo, OTHER, tmp_path)
    assert first != second
    bernoulli, gaussian = load_pretrained(ZOO), load_pretrained(OTHER)

    latest = vaezoo.from_pretrained(f"hf-hub:{repo}")
    assert same_weights(latest, gaussian)
    for revision in (first, "v1"):
        pinned = vaezoo.from_pretrained(f"hf-hub:{repo}@{revision}")
        assert same_weights(pinned, bernoulli) and not same_weights(pinned, gaussian)
    folder = vhub.fetch(f"hf-hub:{repo}@v1")
    assert folder.name == first  # the snapshot of that commit in huggingface_hub's cache
    assert hub.count("GET", f"/{repo}/resolve/{second}/model.safetensors") == 1  # the main branch's, pinned to its commit


def test_a_sha256_mismatch_is_refused_and_nothing_is_loaded(hf, hub, tmp_path, monkeypatch):
    repo = new_repo()
    wrong = (build_folder(OTHER, tmp_path / "other") / "model.safetensors").read_bytes()
    publish(hub, repo, ZOO, tmp_path, model__safetensors=wrong)

    def must_not_load(*args, **kwargs):
        raise AssertionError("weights that failed the sha256 check were loaded")

    monkeypatch.setattr("vaezoo.loading.load_folder", must_not_load)
    with pytest.raises(HubChecksumError) as info:
        vaezoo.from_pretrained(f"hf-hub:{repo}")
    message = str(info.value)
    assert "\n" not in message and "nothing was loaded" in message
    assert get_entry(ZOO).sha256 in message and get_entry(OTHER).sha256 in message


def test_a_config_json_without_the_weights_sha256_is_refused(hf, hub, tmp_path):
    repo = new_repo()
    config = json.loads((build_folder(ZOO, tmp_path / "z") / "config.json").read_text())
    del config["weights"]
    publish(hub, repo, ZOO, tmp_path, config__json=json.dumps(config).encode())
    with pytest.raises(HubError, match="records no sha256"):
        vaezoo.from_pretrained(f"hf-hub:{repo}")


def test_offline_loads_from_the_cache_and_asks_the_hub_nothing(hf, hub, tmp_path, monkeypatch):
    repo = new_repo()
    commit = publish(hub, repo, ZOO, tmp_path)
    online = vaezoo.from_pretrained(f"hf-hub:{repo}")
    asked = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in (f"hf-hub:{repo}", f"hf-hub:{repo}@{commit}", f"hf-hub:{repo}@main"):
        assert same_weights(vaezoo.from_pretrained(name), online)
    assert len(hub.requests) == asked


def test_offline_without_the_cache_is_one_line_and_exit_3(hf, hub, tmp_path, monkeypatch, capsys):
    repo = new_repo()
    publish(hub, repo, ZOO, tmp_path)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1 at import sets it
    with pytest.raises(HubUnavailableError, match="not in the local Hugging Face cache .*HF_HUB_OFFLINE") as info:
        vaezoo.from_pretrained(f"hf-hub:{repo}")
    assert isinstance(info.value, OSError) and "\n" not in str(info.value)
    assert main(["sample", f"hf-hub:{repo}", "--out", str(tmp_path / "s.png")]) == 3
    assert "HF_HUB_OFFLINE" in one_error_line(capsys)
    assert not (tmp_path / "s.png").exists()


def test_a_missing_repository_revision_or_file_is_one_line_and_exit_2(hf, hub, tmp_path, capsys):
    repo = new_repo()
    publish(hub, repo, ZOO, tmp_path)
    hub.commit(f"{repo}-empty", {"README.md": b"# not a vaezoo model\n"})
    cases = [(f"hf-hub:someone/no-such-model-{next(_ids)}", "no repository someone/no-such-model"),
             (f"hf-hub:{repo}@v9", "has no revision 'v9'"),
             (f"hf-hub:{repo}-empty", "has no config.json")]
    for name, words in cases:
        with pytest.raises(HubError, match=words):
            vaezoo.from_pretrained(name)
        assert main(["eval", name]) == 2
        assert words in one_error_line(capsys)


def test_an_unreachable_hub_is_an_io_error_naming_the_endpoint(hf, monkeypatch):
    # (not a real closed port: huggingface_hub retries a refused connection for ~25 s before it gives up)
    from huggingface_hub.utils import LocalEntryNotFoundError

    def unreachable(*args, **kwargs):
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionError as exc:
            raise LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub") from exc

    monkeypatch.setattr(hf, "hf_hub_download", unreachable)
    with pytest.raises(HubUnavailableError, match=r"cannot reach the Hub at http://127\.0\.0\.1:\d+ .*Connection refused"):
        vaezoo.from_pretrained("hf-hub:someone/digits")


def test_huggingface_hub_retry_warnings_do_not_reach_the_user(hf, monkeypatch, capsys):
    """huggingface_hub logs a warning per retry of a failed request; the user sees only vaezoo's one line."""
    import logging

    from huggingface_hub.utils import LocalEntryNotFoundError

    retry_log = logging.getLogger("huggingface_hub.utils._http")
    handler = logging.StreamHandler(sys.stderr)  # as a user's logging setup (or huggingface_hub's own) would
    retry_log.addHandler(handler)
    monkeypatch.setattr(retry_log, "propagate", False)
    seen = []

    def unreachable(*args, **kwargs):
        for n in range(1, 4):
            retry_log.warning(f"Retrying in {n}s [Retry {n}/5].")
            seen.append(n)
        raise LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub")

    monkeypatch.setattr(hf, "hf_hub_download", unreachable)
    try:
        assert main(["eval", "hf-hub:someone/digits"]) == 3
    finally:
        retry_log.removeHandler(handler)
    assert seen == [1, 2, 3]  # the retries happened
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("vaezoo: error: ") and "Retrying" not in err[0], err
    assert retry_log.isEnabledFor(logging.WARNING)  # held back only during the call


def test_eval_and_sample_take_a_hub_name(hf, hub, tmp_path, capsys):
    repo = new_repo()
    publish(hub, repo, ZOO, tmp_path)
    assert main(["eval", f"hf-hub:{repo}", "--num-samples", "2", "--limit", "16", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["num_examples"] == 16 and scores["nll"] > 0  # measured on the data config.json records
    out = tmp_path / "s.png"
    assert main(["sample", f"hf-hub:{repo}", "--n", "4", "--out", str(out)]) == 0
    assert out.is_file()


# -- pushing to the (loopback) Hub ---------------------------------------------------------
def test_push_to_hub_uploads_the_three_files_and_loads_back(hf, hub, tmp_path):
    repo = new_repo("pushed")
    model = vaezoo.from_pretrained(ZOO)
    assert model.push_to_hub(repo) == f"hf-hub:{repo}"
    files = hub.files(repo)
    assert {"config.json", "model.safetensors", "README.md"} <= set(files)
    zoo_file = vaezoo.zoo.api.download(ZOO, progress=False)
    assert files["model.safetensors"] == zoo_file.read_bytes()  # unchanged: the zoo's file, byte for byte
    meta = read_card_metadata(files["README.md"].decode())
    assert meta["library_name"] == "vaezoo" and meta["model-index"]
    assert same_weights(vaezoo.from_pretrained(f"hf-hub:{repo}"), model)


def test_a_changed_model_is_pushed_as_it_is_without_the_zoo_numbers(hf, hub, tmp_path):
    repo = new_repo("changed")
    model = vaezoo.from_pretrained(ZOO)
    with torch.no_grad():
        next(model.parameters()).add_(0.5)
    model.push_to_hub(repo, commit_message="fine-tuned")
    files = hub.files(repo)
    saved = json.loads(files["config.json"])
    import hashlib

    assert saved["weights"]["sha256"] == hashlib.sha256(files["model.safetensors"]).hexdigest()
    card = files["README.md"].decode()
    assert "model-index" not in read_card_metadata(card) and "Not measured" in card
    assert same_weights(vaezoo.from_pretrained(f"hf-hub:{repo}"), model)


def test_zoo_push_on_the_command_line_to_a_branch(hf, hub, tmp_path, capsys):
    repo = new_repo("cli")
    assert main(["zoo", "push", ZOO, repo, "--revision", "v2"]) == 0
    out = capsys.readouterr().out
    assert f"vaezoo.from_pretrained('hf-hub:{repo}@v2')" in out
    assert "model.safetensors" in hub.files(repo, "v2") and "model.safetensors" not in hub.files(repo, "main")
    assert same_weights(vaezoo.from_pretrained(f"hf-hub:{repo}@v2"), load_pretrained(ZOO))


def test_zoo_push_dry_run_writes_the_folder_and_uploads_nothing(hf, hub, tmp_path, capsys):
    posts = hub.count("POST", "/api/")
    assert main(["zoo", "push", ZOO, "someone/dry", "--dry-run", "--out", str(tmp_path / "dry")]) == 0
    assert sorted(p.name for p in (tmp_path / "dry").iterdir()) == sorted(FILES)
    assert hub.count("POST", "/api/") == posts
    assert main(["zoo", "push", ZOO, "someone/dry", "--dry-run"]) == 2
    assert "--out DIR" in one_error_line(capsys)


def test_a_push_without_a_valid_token_is_one_line_and_exit_2(hf, hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    repo = new_repo("refused")
    assert main(["zoo", "push", ZOO, repo]) == 2
    line = one_error_line(capsys)
    assert "refused" in line and "HF_TOKEN" in line
    assert repo not in hub.repos


def test_zoo_push_of_a_bad_source_or_repo_id_is_one_line(hf, capsys, tmp_path):
    assert main(["zoo", "push", "mlp-bernoulli.digts", "someone/x"]) == 2
    assert "Did you mean 'mlp-bernoulli.digits'" in one_error_line(capsys)
    assert main(["zoo", "push", str(tmp_path / "nothing"), "someone/x"]) == 2
    assert "no such folder" in one_error_line(capsys)
    assert main(["zoo", "push", ZOO, "just-a-name"]) == 2
    assert "expected ORG/NAME" in one_error_line(capsys)
