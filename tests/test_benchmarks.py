"""The benchmark scripts still run and still compare like with like (smoke runs on a few
hundred images; the timings themselves are not asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")


def run_script(name: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args], capture_output=True, text=True, timeout=600, cwd=BENCHMARKS
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def table_rows(text: str) -> dict[str, list[str]]:
    """First cell -> the other cells, for every markdown table row in ``text``."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


@needs_fashion
def test_training_benchmark_contenders_compute_the_same_loss():
    out = run_script("bench_train.py", "--workload", "mlp", "--quick", "--limit", "512", "--no-pythae", "--no-compile")
    rows = table_rows(out)
    assert {"bare", "vaezoo"} <= rows.keys()
    assert float(rows["bare"][0]) > 0 and float(rows["vaezoo"][0]) > 0  # seconds per epoch
    assert "MISSED" in rows["vaezoo"][-1] or "met" in rows["vaezoo"][-1]  # the verdict column
    diff = re.search(r"difference bare ([-+]?[0-9.]+e[-+][0-9]+)", out)
    assert diff and abs(float(diff.group(1))) < 1e-3


@needs_fashion
def test_hierarchical_benchmark_matches_the_hand_written_loss():
    out = run_script("bench_hierarchical.py", "--quick", "--limit", "512")
    rows = table_rows(out)
    assert float(rows["hand"][0]) > 0 and float(rows["vaezoo"][0]) > 0
    diff = re.search(r"difference hand ([-+]?[0-9.]+e[-+][0-9]+)", out)
    assert diff and abs(float(diff.group(1))) < 1e-3  # the same network, the same numbers


@needs_fashion
def test_step_profile_splits_the_step_for_every_contender():
    out = run_script("profile_step.py", "--limit", "256", "--top", "3")
    rows = table_rows(out)
    for name in ("bare", "vaezoo", "vaezoo compile"):
        total, matmul, adam, rest = (float(v) for v in rows[name])
        assert matmul > 0 and adam > 0
        assert total == pytest.approx(matmul + adam + rest, abs=0.02)


def test_startup_benchmark_reports_import_and_discovery():
    out = run_script("bench_startup.py", "--quick")
    rows = table_rows(out)
    key = next(k for k in rows if "import + discovery" in k)
    assert float(rows[key][0].strip("*")) > 0
