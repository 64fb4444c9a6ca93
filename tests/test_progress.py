"""Progress bars (terminal only, unless asked) and epoch lines that print real durations."""

from __future__ import annotations

import json
import re
import sys

import pytest

from vaezoo.cli import main
from vaezoo.training.metrics import progress_bar, read_metrics
from vaezoo.training.trainer import format_seconds

TINY = ["data.limit=96", "model.latent_dim=2", "model.encoder.hidden=[16]", "model.decoder.hidden=[16]",
        "train.batch_size=32", "eval.num_samples=2", "log.num_images=4", "log.loggers=[jsonl]"]
EPOCH_LINE = re.compile(r"^epoch \d+/\d+  .*  (\d+(?:\.\d+)?) (ms|s)$")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("progress") / "run"
    assert main(["train", *TINY, "train.epochs=1", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize(
    ("show", "tty", "ci", "shown"),
    [
        (None, True, None, True),  # auto: a terminal
        (None, False, None, False),  # auto: not a terminal
        (None, True, "true", False),  # auto: under CI
        (None, True, "0", True),
        (True, False, "true", True),  # asked for
        (False, True, None, False),  # refused
    ],
)
def test_when_a_bar_shows(monkeypatch, show, tty, ci, shown):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty, raising=False)
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    bar = progress_bar(10, "x", show)
    assert bar.disable is (not shown)
    bar.close()


def test_eval_shows_examples_done_rate_and_eta_when_asked(run, capsys):
    assert main(["eval", str(run), "-k", "2", "--limit", "20", "--json", "--no-progress", "--batch-size", "8"]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == ""
    assert main(["eval", str(run), "-k", "2", "--limit", "20", "--json", "--progress", "--batch-size", "8"]) == 0
    loud = capsys.readouterr()
    assert json.loads(loud.out) == json.loads(quiet.out)  # the bar changes no number
    assert "20/20" in loud.err and "ex/s" in loud.err and "test (K=2)" in loud.err
    assert main(["eval", str(run), "-k", "2", "--limit", "20", "--json"]) == 0  # not a terminal: no bar
    assert capsys.readouterr().err == ""


def test_format_seconds():
    assert format_seconds(0.0123) == "12.3 ms"
    assert format_seconds(0.4) == "400 ms"
    assert format_seconds(0.9996) == "1 s"
    assert format_seconds(3.14159) == "3.14 s"
    assert format_seconds(42.46) == "42.5 s"
    assert format_seconds(59.97) == "1 min 00 s"
    assert format_seconds(725) == "12 min 05 s"
    assert format_seconds(3 * 3600 + 125) == "3 h 02 min"


def test_epoch_lines_print_real_time_and_total_time_survives_a_resume(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", *TINY, "train.epochs=2", "log.images=false", "eval.at_end=false", "--out", str(out),
                 "train.epochs=1"]) == 0
    assert main(["train", "--resume", str(out), "train.epochs=2"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2, lines
    for line in lines:
        match = EPOCH_LINE.match(line)
        assert match, line
        assert float(match.group(1)) > 0, line  # never "0.0 s" for a fast epoch
    epochs = [r for r in read_metrics(out) if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert epochs[1]["time/total"] > epochs[0]["time/total"] > 0  # counted on across the resume
