"""Loggers (``log.loggers``): jsonl always, the trackers read back through their own libraries,
a missing library refused before anything is written, old ``log.tensorboard`` translated, and a
third-party logger discovered through an entry point."""

from __future__ import annotations

import glob
import json
import struct
import sys
import warnings
from pathlib import Path

import pytest

import vaezoo
from vaezoo.cli import main
from vaezoo.config import load_config
from vaezoo.loggers.config import build_loggers
from vaezoo.loggers.jsonl import JsonlLogger
from vaezoo.testing import check_logger
from vaezoo.training.metrics import MetricsLog, read_metrics

from fake_dist import install_distribution

TINY = [
    "data.limit=96", "model.latent_dim=2", "model.encoder.hidden=[16]", "model.decoder.hidden=[16]",
    "train.epochs=2", "train.batch_size=32", "eval.num_samples=4", "log.num_images=8", "log.progress=false",
]
TRACKERS = "log.loggers=[tensorboard, mlflow, {name: wandb, mode: offline, project: tiny}]"


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vaezoo: error: ") and "Traceback" not in err[0], err
    return err[0]


@pytest.fixture(autouse=True, scope="module")
def _keep_interpreter_hooks():
    """wandb replaces sys.exit and sys.excepthook with its own hooks (its sys.exit() raises
    SystemExit(0), not SystemExit(None)); put the interpreter's back for the tests after these."""
    saved = sys.exit, sys.excepthook
    yield
    sys.exit, sys.excepthook = saved


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One tiny run reported to every built-in tracker (MLflow into the run folder's own store)."""
    out = tmp_path_factory.mktemp("loggers") / "run"
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    mp.chdir(out.parent)
    try:
        assert main(["train", *TINY, TRACKERS, "--out", str(out)]) == 0
    finally:
        mp.undo()
    assert sorted(p.name for p in out.parent.iterdir()) == ["run"], "a tracker wrote outside the run folder"
    return out


def epoch_losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["train/loss"] for r in read_metrics(run) if r["kind"] == "epoch"}


# -- jsonl and the config ----------------------------------------------------------------------
def test_the_default_is_jsonl_and_jsonl_is_always_first():
    assert list(load_config().log.loggers) == ["jsonl"]
    loggers = build_loggers(["tensorboard"])
    assert [type(lg).__name__ for lg in loggers] == ["JsonlLogger", "TensorBoardLogger"]
    assert [type(lg).__name__ for lg in build_loggers(["tensorboard", "jsonl"])] == ["JsonlLogger", "TensorBoardLogger"]


def test_jsonl_writes_records_and_drops_those_after_a_resumed_epoch(tmp_path):
    log = MetricsLog(tmp_path, loggers=build_loggers([]))
    for epoch in (1, 2, 3):
        log.write({"kind": "epoch", "epoch": epoch, "step": 10 * epoch, "train/loss": float("nan") if epoch == 2 else 1.0})
    log.drop_after(2)
    log.write({"kind": "epoch", "epoch": 3, "step": 30, "train/loss": 0.5})
    log.close()
    assert [(r["epoch"], r["train/loss"]) for r in read_metrics(tmp_path)] == [(1, 1.0), (2, None), (3, 0.5)]


def test_a_silent_rank_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    log = MetricsLog(None, loggers=[JsonlLogger()])
    log.write({"kind": "step", "step": 1, "train/loss": 1.0})
    log.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("item", "message"), [
    ("log.loggers=[mlfow]", "log.loggers[0].name: unknown logger 'mlfow'. Did you mean 'mlflow'?"),
    ("log.loggers=[{name: mlflow, uri: x}]", "log.loggers[0]: logger 'mlflow' has no parameter 'uri'. Accepted: tracking_uri"),
    ("log.loggers=[tensorboard, tensorboard]", "log.loggers[1]: logger 'tensorboard' is listed twice"),
    ("log.loggers=mlflow", "log.loggers: expected a list like [jsonl, tensorboard]"),
])
def test_bad_loggers_are_one_line_errors_before_anything_is_written(item, message, tmp_path, capsys):
    assert main(["train", *TINY, item, "--out", str(tmp_path / "run")]) == 2
    assert message in one_error_line(capsys)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("library", "logger"), [("mlflow", "mlflow"), ("wandb", "wandb"), ("tensorboard", "tensorboard")])
def test_a_tracker_whose_library_is_missing_stops_the_run_before_its_folder(library, logger, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, library, None)  # import fails as if it were not installed
    assert main(["train", *TINY, f"log.loggers=[jsonl, {logger}]", "--out", str(tmp_path / "run")]) == 2
    line = one_error_line(capsys)
    assert f"log.loggers[1]: logger '{logger}' needs the {library} package, which is not installed" in line
    assert f"pip install 'vaezoo[{library}]'" in line
    assert not (tmp_path / "run").exists()


def test_old_log_tensorboard_is_translated_with_one_warning(monkeypatch):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        on = load_config(None, ["log.loggers=[jsonl, mlflow]", "log.tensorboard=true"])
        off = load_config(None, ["log.loggers=[jsonl, tensorboard]", "log.tensorboard=false"])
    assert list(on.log.loggers) == ["jsonl", "mlflow", "tensorboard"] and list(off.log.loggers) == ["jsonl"]
    assert len(caught) == 2 and "log.tensorboard (in override 'log.tensorboard=true'): replaced by log.loggers; " \
        "write log.loggers=[jsonl, mlflow, tensorboard]" in str(caught[0].message)
    # what true meant before: TensorBoard only when it is installed (a saved run folder's config)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.warns(UserWarning, match="tensorboard is not installed, so it is left out as before"):
        old = load_config(None, base={"log": {"tensorboard": True}})
    assert list(old.log.loggers) == ["jsonl"] and "tensorboard" not in old.log


# -- the trackers, read back ------------------------------------------------------------------
def test_tensorboard_has_the_scalars_the_grids_and_the_config(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tracked / "tensorboard"), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "val/elbo", "test/nll", "epoch/lr"} - set(tags["scalars"]) == set()
    assert {e.step: e.value for e in events.Scalars("train/loss")} == pytest.approx(epoch_losses(tracked))
    assert {"samples", "reconstructions", "loss_curve", "latent_scatter"} <= set(tags["images"])
    assert [e.step for e in events.Images("samples")] == [3, 6]
    assert "config/text_summary" in tags["tensors"]
    text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| train.epochs | 2 |" in text


def test_mlflow_has_params_metrics_figures_and_model(tracked):
    from mlflow.tracking import MlflowClient

    state = json.loads((tracked / "mlflow.json").read_text())
    assert state["tracking_uri"] == f"sqlite:///{tracked.resolve() / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=state["tracking_uri"])
    run = client.get_run(state["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert client.get_experiment(run.info.experiment_id).name == "vaezoo"
    params = run.data.params
    assert params["train.epochs"] == "2" and params["model.encoder.hidden"] == "[16]" and params["data.limit"] == "96"
    history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "train/loss")}
    assert history == pytest.approx(epoch_losses(tracked))
    assert "test/nll" in run.data.metrics
    images = {Path(f.path).name for f in client.list_artifacts(run.info.run_id, "images")}
    assert {"samples_e001.png", "samples_e002.png", "reconstructions_e002.png", "loss_curve.png"} <= images
    model = {Path(f.path).name for f in client.list_artifacts(run.info.run_id, "model")}
    assert {"config.json", "model.safetensors"} <= model
    local = Path(client.download_artifacts(run.info.run_id, "model", str(tracked.parent / "download")))
    assert vaezoo.from_pretrained(str(local)).latent_dim == 2


def _wandb_records(path: Path) -> list:
    """The records of an offline ``.wandb`` file (a LevelDB-style log of protobuf records)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block, pos, out, part = path.read_bytes(), 32768, 7, [], b""  # 7: the ':W&B' file header
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        room = block - pos % block
        if room < 7:
            pos += room
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        part += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last fragment of one
            record = pb.Record()
            record.ParseFromString(part)
            out.append(record)
            part = b""
        elif kind == 0:
            break
    return out


def test_wandb_offline_run_has_config_history_images_and_model(tracked):
    run_id = json.loads((tracked / "wandb.json").read_text())["run_id"]
    (folder,) = glob.glob(str(tracked / "wandb" / f"offline-run-*-{run_id}"))
    records = _wandb_records(Path(folder) / f"run-{run_id}.wandb")
    by_kind: dict[str, list] = {}
    for r in records:
        by_kind.setdefault(r.WhichOneof("record_type"), []).append(r)
    (run,) = by_kind["run"][:1]
    assert run.run.project == "tiny" and run.run.display_name == "run"
    config = {i.key: json.loads(i.value_json) for i in run.run.config.update}
    assert config["train"]["epochs"] == 2 and config["log"]["loggers"][2] == {"name": "wandb", "mode": "offline", "project": "tiny"}
    rows = [{(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item} for r in by_kind["history"]]
    losses = {row["_step"]: row["train/loss"] for row in rows if "train/loss" in row and "val/elbo" in row}
    assert losses == pytest.approx(epoch_losses(tracked))
    assert any("test/nll" in row for row in rows) and any(row.get("images/samples/_type") == "image-file" for row in rows)
    assert glob.glob(str(Path(folder) / "files" / "media" / "images" / "images" / "samples_*.png"))
    assert any(r.artifact.type == "model" for r in by_kind.get("artifact", []))


def test_every_built_in_logger_passes_the_conformance_check(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name, params in (("jsonl", {}), ("tensorboard", {}), ("mlflow", {}), ("wandb", {"mode": "offline"})):
        assert isinstance(check_logger(name, **params), vaezoo.Logger)


def test_the_conformance_check_catches_a_broken_logger(tmp_path, monkeypatch):
    import types

    from vaezoo.testing import registered_plugin

    monkeypatch.chdir(tmp_path)

    class Eager(vaezoo.Logger):
        def __init__(self):
            Path("eager.txt").write_text("constructed")

    class Broken(vaezoo.Logger):
        def log_images(self, name, path, step):
            raise KeyError(name)

    @vaezoo.hookimpl
    def vaezoo_register_loggers(register):
        register("eager", Eager)

    with registered_plugin(types.SimpleNamespace(vaezoo_register_loggers=vaezoo_register_loggers), name="eager"):
        with pytest.raises(AssertionError, match=r"^logger 'eager': building it wrote \['eager.txt'\]; a logger's constructor"):
            check_logger("eager")
    with pytest.raises(AssertionError, match=r"^logger 'Broken': log_images\(name, path, step\) raised KeyError: 'samples'$"):
        check_logger(Broken())
    assert list(tmp_path.iterdir()) == []


def test_a_failing_tracker_is_switched_off_with_one_warning_and_the_run_goes_on(tmp_path, capsys):
    """A tracker that raises mid-run (a server gone, a full disk of its own) loses the rest of
    the run, not the run: it is closed, one warning line says so, the other loggers and
    metrics.jsonl get every record, and the model is saved."""
    import types

    from vaezoo.testing import registered_plugin

    calls: list[tuple[str, str]] = []

    class Flaky(vaezoo.Logger):
        def __init__(self, fail_in="log_metrics", after=3):
            self.fail_in, self.after, self.seen = fail_in, after, 0

        def log_metrics(self, record):
            self.hit("log_metrics")

        def log_model(self, folder):
            self.hit("log_model")

        def hit(self, method):
            calls.append(("flaky", method))
            self.seen += method == self.fail_in
            if method == self.fail_in and self.seen >= self.after:
                raise ConnectionError("tracking server\nwent away")

        def close(self):
            calls.append(("flaky", "close"))
            if self.fail_in == "close":
                raise ConnectionError("tracking server\nwent away")

    class Keeps(vaezoo.Logger):
        def log_metrics(self, record):
            calls.append(("keeps", record["kind"]))

        def log_model(self, folder):
            calls.append(("keeps", "model"))

    @vaezoo.hookimpl
    def vaezoo_register_loggers(register):
        register("flaky", Flaky)
        register("keeps", Keeps)

    with registered_plugin(types.SimpleNamespace(vaezoo_register_loggers=vaezoo_register_loggers), name="flaky"):
        for fail_in in ("log_metrics", "log_model", "close"):
            calls.clear()
            run = tmp_path / fail_in
            items = f"log.loggers=[{{name: flaky, fail_in: {fail_in}, after: {2 if fail_in == 'log_metrics' else 1}}}, keeps]"
            assert main(["train", *TINY, items, "--out", str(run)]) == 0
            err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
            assert len(err) == 1 and err[0].startswith("vaezoo: warning: logger Flaky: ") and "Traceback" not in err[0], err
            assert f"{fail_in} failed (ConnectionError: tracking server went away)" in err[0]
            assert ("it is switched off" in err[0]) == (fail_in != "close")
            flaky = [m for who, m in calls if who == "flaky"]
            assert flaky[-1] == "close" and flaky.count("close") == 1, flaky
            if fail_in != "close":
                assert flaky.count(fail_in) == (2 if fail_in == "log_metrics" else 1), "nothing more after the failure"
            assert ("log_model" in flaky) == (fail_in != "log_metrics")
            kept = [m for who, m in calls if who == "keeps"]
            assert [m for m in kept if m != "model"] == [r["kind"] for r in read_metrics(run)] and "model" in kept, \
                "the others get every record"
            assert (run / "model" / "model.safetensors").is_file()


def test_metrics_jsonl_failing_to_close_is_raised_but_never_hides_the_error_of_a_failed_run(tmp_path, monkeypatch):
    log = MetricsLog(tmp_path, loggers=build_loggers([]))
    monkeypatch.setattr(log.jsonl, "close", lambda: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(OSError, match="No space left"):
        log.close()
    (tmp_path / "b").mkdir()
    log = MetricsLog(tmp_path / "b", loggers=build_loggers([]))
    monkeypatch.setattr(log.jsonl, "close", lambda: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.warns(UserWarning, match=r"^logger JsonlLogger: close failed \(OSError: \[Errno 28\] No space left"):
        with pytest.raises(KeyError, match="the run's own error"):
            try:
                raise KeyError("the run's own error")
            finally:
                log.close()


# -- a third-party logger ---------------------------------------------------------------------
MEMO = '''
import json
from pathlib import Path

import vaezoo


class Memo(vaezoo.Logger):
    """Writes every call into a file of the run folder.

    Parameters:

    * ``file`` -- the file's name.
    """

    def __init__(self, file: str = "memo.jsonl"):
        self.file = file

    def start(self, run_dir, config):
        self.fh = open(Path(run_dir) / self.file, "a")
        self.call("start", epochs=config["train"]["epochs"])

    def call(self, what, **data):
        self.fh.write(json.dumps({"call": what, **data}) + "\\n")

    def log_metrics(self, record):
        self.call("metrics", kind=record["kind"], step=record["step"])

    def log_images(self, name, path, step):
        self.call("images", name=name, file=Path(path).name, step=step)

    def log_model(self, folder):
        self.call("model", files=sorted(p.name for p in Path(folder).iterdir()))

    def close(self):
        self.call("close")
        self.fh.close()


@vaezoo.hookimpl
def vaezoo_register_loggers(register):
    register("memo", "vaezoo_memo:Memo")
'''


def test_a_third_party_logger_from_an_entry_point(tmp_path, monkeypatch, capsys):
    install_distribution(tmp_path / "site", monkeypatch, dist="vaezoo-memo", version="0.1.0",
                         entry_points={"memo": "vaezoo_memo"}, modules={"vaezoo_memo": MEMO})
    monkeypatch.setenv("VAEZOO_PLUGINS", "memo")
    assert main(["list", "logger"]) == 0
    assert "memo" in capsys.readouterr().out
    check_logger("memo", file="x.jsonl")
    run = tmp_path / "run"
    assert main(["train", *TINY, "log.loggers=[{name: memo, file: calls.jsonl}]", "--out", str(run)]) == 0
    calls = [json.loads(line) for line in (run / "calls.jsonl").read_text().splitlines()]
    assert calls[0] == {"call": "start", "epochs": 2} and calls[-1] == {"call": "close"}
    kinds = [c["kind"] for c in calls if c["call"] == "metrics"]
    assert kinds.count("epoch") == 2 and kinds[-1] == "eval"
    images = [(c["name"], c["file"]) for c in calls if c["call"] == "images"]
    assert ("samples", "samples_e001.png") in images and ("loss_curve", "loss_curve.png") in images
    assert {"call": "model", "files": ["config.json", "model.safetensors"]} in calls
    assert len(read_metrics(run)) == len(kinds), "jsonl is on beside it"


def test_a_resumed_run_continues_its_mlflow_run(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = tmp_path / "run"
    one = [o if o != "train.epochs=2" else "train.epochs=1" for o in TINY]
    assert main(["train", *one, "log.loggers=[mlflow]", "--out", str(run)]) == 0
    first = json.loads((run / "mlflow.json").read_text())
    assert main(["train", "--resume", str(run), "train.epochs=2"]) == 0
    assert json.loads((run / "mlflow.json").read_text()) == first
    client = MlflowClient(tracking_uri=first["tracking_uri"])
    (only,) = client.search_runs([client.get_experiment_by_name("vaezoo").experiment_id])
    assert only.info.run_id == first["run_id"] and only.info.status == "FINISHED"
    history = {m.step: m.value for m in client.get_metric_history(first["run_id"], "train/loss")}
    assert history == pytest.approx(epoch_losses(run)) and len(history) == 2
