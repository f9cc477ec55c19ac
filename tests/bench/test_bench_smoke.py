"""The benchmark (SPEC P, ``make bench``) runs end to end at a tiny scale and writes
``out/bench.json`` in the shape SPEC P gives. Shape only: timings are never asserted in tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("P1", "P2", "P3", "P4", "P5", "P6", "P7")
KEYS = {"seconds", "floor_seconds", "ratio", "items_per_second", "peak_rss_mb"}


def test_bench_runs_and_writes_the_spec_shape(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--scale", "0.002", "--repeat", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert list(figures) == list(STAGES)
    for stage, fig in figures.items():
        assert set(fig) == KEYS, stage
        assert fig["seconds"] > 0 and fig["items_per_second"] > 0, stage
        assert 0 < fig["peak_rss_mb"] < 10_000, stage
        if stage == "P2":
            assert fig["floor_seconds"] is None and fig["ratio"] is None
        else:
            assert fig["floor_seconds"] > 0 and fig["ratio"] > 0, stage
    for stage in STAGES:  # the printed table has a row per stage with its verdict
        assert any(line.startswith(stage) and line.rstrip().endswith(("PASS", "FAIL"))
                   for line in done.stdout.splitlines()), stage


def test_generator_is_deterministic_and_scaled(tmp_path: Path) -> None:
    from bench.generate import generate_workbook
    from invoicing.workbook.reader import read_workbook

    a, b = tmp_path / "a.xlsx", tmp_path / "b.xlsx"
    sizes = generate_workbook(a, 0.01)
    generate_workbook(b, 0.01)
    assert sizes == {"contracts": 10, "lines": 30, "transactions": 1000}
    first, second = read_workbook(a).portfolio, read_workbook(b).portfolio
    assert first == second
    assert sum(len(c.transactions) for c in first.contracts) == 1000
    assert sum(1 for c in first.contracts if len(c.customers) == 2) == 2  # a fifth
