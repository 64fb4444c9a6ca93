"""vaezoo.fit: training from Python on tensors, datasets and loaders; callbacks and their events."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import vaezoo
from vaezoo.errors import ConfigError
from vaezoo.training import checkpoint as ckpt


@pytest.fixture(scope="module")
def digits():
    """Binarized sklearn digits: 512 training and 128 validation examples (with labels)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (torch.tensor(d.data, dtype=torch.float32) / 16.0 > 0.5).float().view(-1, 1, 8, 8)
    y = torch.tensor(d.target)
    return x[:512], y[:512], x[512:640], y[512:640]


def small_model(seed=0):
    torch.manual_seed(seed)
    return vaezoo.build_model(
        {
            "data_shape": [1, 8, 8],
            "latent_dim": 4,
            "encoder": {"name": "mlp", "hidden": [32]},
            "decoder": {"name": "mlp", "hidden": [32]},
            "prior": "normal",
            "likelihood": "bernoulli",
        }
    )


FAST = dict(epochs=3, batch_size=64, lr=3e-3, verbose=False)


def check_learned(result, epochs=3):
    losses = [r["train/loss"] for r in result.history]
    assert len(losses) == epochs and losses[-1] < losses[0]
    assert all("val/elbo" in r for r in result.history)
    assert result.stop_reason == "completed" and result.best_epoch is not None
    assert result.weights == f"best (epoch {result.best_epoch})"


def test_fit_from_a_tensor(digits, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, _, xv, _ = digits
    model = small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = vaezoo.fit(model, x, xv, **FAST)
    check_learned(result)
    assert not model.training and any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert list(tmp_path.iterdir()) == []  # run_dir=None: nothing written


class Snapshots(vaezoo.Callback):
    """The model's weights after each epoch."""

    def __init__(self):
        self.states = {}

    def on_epoch_end(self, trainer, record):
        self.states[trainer.epoch] = {k: v.clone() for k, v in trainer.model.state_dict().items()}


def same_weights(model, state):
    return all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_the_model_holds_the_weights_the_command_line_publishes(digits):
    x, _, xv, _ = digits
    snaps, model = Snapshots(), small_model()
    result = vaezoo.fit(model, x, xv, epochs=4, lr=0.05, schedule="constant", verbose=False, callbacks=[snaps])
    assert result.weights == f"best (epoch {result.best_epoch})" and same_weights(model, snaps.states[result.best_epoch])
    best = max(result.history, key=lambda r: r["val/elbo"])
    assert best["epoch"] == result.best_epoch and best["val/elbo"] == result.best_val_elbo
    snaps, model = Snapshots(), small_model()
    assert vaezoo.fit(model, x, epochs=2, verbose=False, callbacks=[snaps]).weights == "last"
    assert same_weights(model, snaps.states[2])
    snaps, model = Snapshots(), small_model()
    assert vaezoo.fit(model, x, epochs=2, ema=0.5, verbose=False, callbacks=[snaps]).weights == "ema"
    assert not same_weights(model, snaps.states[2])  # the averages, not the last weights
    snaps, model = Snapshots(), small_model()
    assert vaezoo.fit(model, x, xv, epochs=2, restore_best=False, verbose=False, callbacks=[snaps]).weights == "last"
    assert same_weights(model, snaps.states[2])


def test_fit_from_a_dataset_of_pairs(digits):
    x, y, xv, yv = digits
    check_learned(vaezoo.fit(small_model(), TensorDataset(x, y), TensorDataset(xv, yv), **FAST))


def test_fit_from_a_dataloader(digits):
    x, y, xv, yv = digits
    train = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(xv), batch_size=128)
    check_learned(vaezoo.fit(small_model(), train, val, epochs=3, lr=3e-3, verbose=False))


def test_the_same_seed_repeats_a_run(digits):
    x, _, xv, _ = digits
    a = vaezoo.fit(small_model(), x, xv, **FAST)
    b = vaezoo.fit(small_model(), x, xv, **FAST)
    assert [r["train/loss"] for r in a.history] == [r["train/loss"] for r in b.history]


class Recorder(vaezoo.Callback):
    def __init__(self):
        self.events = []

    def on_fit_start(self, trainer):
        self.events.append(("fit_start", trainer.epoch))

    def on_step_end(self, trainer, record):
        self.events.append(("step", record["step"]))

    def on_validation_end(self, trainer, record):
        self.events.append(("validation", record["epoch"], "val/elbo" in record))

    def on_epoch_end(self, trainer, record):
        self.events.append(("epoch", record["epoch"], "val/elbo" in record))

    def on_checkpoint(self, trainer, path):
        self.events.append(("checkpoint", path.is_file()))

    def on_fit_end(self, trainer, result):
        self.events.append(("fit_end", result.epochs))


def test_callbacks_receive_the_events_in_order(digits, tmp_path):
    x, _, xv, _ = digits
    rec = Recorder()
    # 256 examples / 64 = 4 steps per epoch, a step record every 2 steps
    vaezoo.fit(small_model(), x[:256], xv, epochs=2, batch_size=64, log_interval=2, verbose=False,
               run_dir=tmp_path / "run", callbacks=[rec])
    per_epoch = lambda e: [("step", 4 * e + 2), ("step", 4 * e + 4), ("validation", e + 1, True),
                           ("epoch", e + 1, True), ("checkpoint", True)]  # fmt: skip
    assert rec.events == [("fit_start", 0), *per_epoch(0), *per_epoch(1), ("fit_end", 2)]
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"metrics.jsonl", ckpt.CHECKPOINT_NAME}


def test_without_validation_there_is_no_validation_event(digits):
    x, _, _, _ = digits
    rec = Recorder()
    result = vaezoo.fit(small_model(), x[:128], epochs=1, batch_size=64, verbose=False, callbacks=[rec])
    assert [e[0] for e in rec.events] == ["fit_start", "epoch", "fit_end"]  # 2 steps < log_interval
    assert result.weights == "last" and result.best_epoch is None


def test_a_replaced_early_stopping_stops_when_told(digits):
    x, _, xv, _ = digits
    # the training loss falls, so "max" never improves after epoch 1: patience 1 stops after epoch 2
    stopper = vaezoo.EarlyStopping(patience=1, monitor="train/loss", mode="max")
    result = vaezoo.fit(small_model(), x, xv, epochs=5, batch_size=64, verbose=False, callbacks=[stopper])
    assert result.stop_reason == "early_stopping" and result.epochs == 2 and len(result.history) == 2
    assert stopper.best_epoch == 1 and stopper.bad_epochs == 1


def test_a_callback_stops_training(digits):
    x, _, _, _ = digits

    class StopAfterFirstStep(vaezoo.Callback):
        def on_step_end(self, trainer, record):
            trainer.should_stop = True

    result = vaezoo.fit(small_model(), x, epochs=4, log_interval=1, verbose=False, callbacks=[StopAfterFirstStep()])
    assert result.stop_reason == "stopped" and result.epochs == 1  # after the current epoch


def test_default_early_stopping_from_patience(digits):
    x, _, xv, _ = digits
    result = vaezoo.fit(small_model(), x, xv, epochs=8, patience=1, lr=0.03, schedule="constant", verbose=False)
    best, expected = None, 8  # patience 1: stop after the first epoch whose val ELBO is not a new best
    for r in result.history:
        if best is not None and r["val/elbo"] <= best:
            expected = r["epoch"]
            break
        best = r["val/elbo"]
    assert result.epochs == expected and result.stop_reason == ("early_stopping" if expected < 8 else "completed")
    with pytest.raises(ConfigError, match="patience is set and an EarlyStopping callback"):
        vaezoo.fit(small_model(), x, xv, patience=2, callbacks=[vaezoo.EarlyStopping(1)], verbose=False)
    with pytest.raises(ConfigError, match="needs validation data"):
        vaezoo.fit(small_model(), x, patience=2, verbose=False)


def test_a_checkpoint_callback_writes_a_file_that_loads(digits, tmp_path):
    x, _, xv, _ = digits
    folder = tmp_path / "ckpts"
    saver = vaezoo.Checkpoint(folder, every=2)
    rec = Recorder()
    model = small_model()
    result = vaezoo.fit(model, x, xv, **FAST, callbacks=[saver, rec])
    assert [e for e in rec.events if e[0] == "checkpoint"] == [("checkpoint", True)] * 2  # epochs 2 and 3 (the last)
    assert result.checkpoint == saver.path == folder / ckpt.CHECKPOINT_NAME
    c = ckpt.load(result.checkpoint)
    assert c.state["epoch"] == 3 and c.state["step"] == result.step
    fresh = small_model(seed=1)
    fresh.load_state_dict(c.group("model"))
    if result.best_epoch == 3:  # the model holds the best epoch's weights
        assert all(torch.equal(v, c.group("model")[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    "options, words",
    [
        (dict(lr=-1), ["vaezoo.fit: lr: must be a positive number"]),
        (dict(epoch=3), ["unknown option 'epoch'", "Did you mean 'epochs'?"]),
        (dict(epochs="many"), ["vaezoo.fit: epochs: expected an integer"]),
        (dict(schedule="cosin"), ["vaezoo.fit: schedule:", "Did you mean 'cosine'?"]),
        (dict(ema=1.5), ["vaezoo.fit: ema:"]),
        (dict(objective="nope"), ["objective", "nope"]),
    ],
)
def test_bad_options_are_one_line_errors_naming_the_option(digits, options, words):
    x, _, _, _ = digits
    with pytest.raises(ConfigError) as info:
        vaezoo.fit(small_model(), x, verbose=False, **options)
    message = str(info.value)
    assert "\n" not in message and "train." not in message, message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize(
    "data, words",
    [
        (lambda x: x.view(len(x), 64), ["train examples have shape (64,)", "data_shape (1, 8, 8)", "reshape"]),
        (lambda x: TensorDataset(x[:, :, :4]), ["train examples have shape (1, 4, 8)"]),
        (lambda x: x.long(), ["torch.int64 tensor"]),
        (lambda x: x.tolist(), ["train must be a Tensor (N, 1, 8, 8)", "got list"]),
        (lambda x: x[:0], ["train has no examples"]),
    ],
)
def test_wrong_data_is_a_one_line_error(digits, data, words):
    x, _, _, _ = digits
    with pytest.raises(vaezoo.VaezooError) as info:
        vaezoo.fit(small_model(), data(x), verbose=False)
    message = str(info.value)
    assert "\n" not in message, message
    for word in words:
        assert word in message, message


def test_fit_trains_the_same_numbers_as_the_command_line(tmp_path):
    """One loop: the default recipe through ``train(cfg)`` and through ``fit`` on the same splits."""
    from vaezoo.config import load_config
    from vaezoo.data import as_config, load_data
    from vaezoo.training.metrics import read_metrics
    from vaezoo.training.run import train

    cfg = load_config(overrides=["train.epochs=2", "eval.at_end=false", "log.images=false", "log.progress=false",
                                 f"log.dir={tmp_path / 'run'}"])  # fmt: skip
    train(cfg, echo=lambda _msg: None)
    cli = [r for r in read_metrics(tmp_path / "run") if r["kind"] == "epoch"]
    torch.manual_seed(int(cfg.train.seed))  # as train(cfg) does before building the model
    model = vaezoo.build_model(cfg.model)
    splits = load_data(as_config(cfg.data), likelihood=model.likelihood)
    result = vaezoo.fit(model, splits.train, splits.val, epochs=2, verbose=False)
    drop_time = lambda r: {k: v for k, v in r.items() if not k.startswith("time/")}  # noqa: E731
    assert [drop_time(r) for r in result.history] == [drop_time(r) for r in cli]


def test_the_examples_in_docs_python_md_run(tmp_path, monkeypatch, capsys):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "python.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/python.md", "exec"), namespace)
    assert namespace["result"].checkpoint == Path("checkpoints") / ckpt.CHECKPOINT_NAME
    assert (tmp_path / "checkpoints" / ckpt.CHECKPOINT_NAME).is_file() and len(namespace["losses"].val) >= 1
    assert "completed 5 best (epoch 5)" in capsys.readouterr().out  # as the page says


def test_resume_repeats_an_uninterrupted_run(digits, tmp_path):
    x, _, xv, _ = digits
    opts = dict(batch_size=64, ema=0.9, verbose=False)
    straight = vaezoo.fit(small_model(), x, xv, epochs=4, **opts)

    class PauseAfter2(vaezoo.Callback):
        def on_epoch_end(self, trainer, record):
            if trainer.epoch == 2:
                trainer.stop("paused")

    saver = vaezoo.Checkpoint(tmp_path)
    vaezoo.fit(small_model(), x, xv, epochs=4, callbacks=[PauseAfter2(), saver], **opts)
    resumed = vaezoo.fit(small_model(seed=5), x, xv, epochs=4, resume=saver.path, **opts)
    assert resumed.epochs == 4 and [r["epoch"] for r in resumed.history] == [3, 4]
    drop_time = lambda r: {k: v for k, v in r.items() if not k.startswith("time/")}  # noqa: E731
    assert [drop_time(r) for r in resumed.history] == [drop_time(r) for r in straight.history[2:]]
    with pytest.raises(ConfigError, match="already trained 2 epochs; pass epochs > 2"):  # the paused checkpoint
        vaezoo.fit(small_model(), x, xv, epochs=1, resume=saver.path, **opts)
    with pytest.raises(vaezoo.VaezooError, match="resume: no checkpoint file"):
        vaezoo.fit(small_model(), x, xv, resume=tmp_path / "nope.safetensors", **opts)


def test_loggers_from_python_get_the_records_figures_and_model(digits, tmp_path, monkeypatch):
    """fit(loggers=...) takes log.loggers items or Logger instances; mistakes are one line
    before training, and trackers need a run folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from vaezoo.loggers.tensorboard import TensorBoardLogger
    from vaezoo.training.metrics import read_metrics

    x, _, xv, _ = digits

    class Keeps(vaezoo.Logger):
        def __init__(self):
            self.calls = []

        def start(self, run_dir, config):
            self.calls.append(("start", config["train"]["epochs"]))

        def log_metrics(self, record):
            self.calls.append(("metrics", record["kind"], record["epoch"]))

        def log_model(self, folder):
            self.calls.append(("model", sorted(p.name for p in folder.iterdir())))

        def close(self):
            self.calls.append(("close",))

    keeps = Keeps()
    run = tmp_path / "run"
    vaezoo.fit(small_model(), x, xv, run_dir=run, loggers=["tensorboard", keeps], **FAST)
    assert keeps.calls[0] == ("start", 3) and keeps.calls[-1] == ("close",)
    epochs = [c[2] for c in keeps.calls if c[:2] == ("metrics", "epoch")]
    assert epochs == [1, 2, 3] == [r["epoch"] for r in read_metrics(run) if r["kind"] == "epoch"]
    (events,) = list((run / "tensorboard").glob("events.*"))
    acc = EventAccumulator(str(events))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")][-1] == [r for r in read_metrics(run) if r["kind"] == "epoch"][-1]["step"]

    for loggers, words in ((["tensorbord"], "vaezoo.fit: loggers[0].name: unknown logger .tensorbord.. Did you mean .tensorboard.?"), (["jsonl", "jsonl"], "listed twice"),
                           ([keeps, keeps], "listed twice"), ([keeps, Keeps()], "listed twice"),
                           (["tensorboard", TensorBoardLogger()], "loggers[1]: logger 'TensorBoardLogger' is listed twice"),
                           ("mlflow", "expected a list")):
        with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
            vaezoo.fit(small_model(), x, run_dir=tmp_path / "bad", loggers=loggers, **FAST)
    with pytest.raises(ConfigError, match="^vaezoo.fit: loggers need a run_dir"):
        vaezoo.fit(small_model(), x, loggers=["tensorboard"], **FAST)
    assert vaezoo.fit(small_model(), x, loggers=[], **FAST).epochs == FAST["epochs"]  # none: as without loggers=
    assert not (tmp_path / "bad").exists()
