"""benchmarks.scale: the cells it times and its memory guard (a row projected past the limit is skipped)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.scale import HEA, build_cell

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("n", [1000, 8000, 100000])
def test_cells_are_near_the_asked_size_and_the_hea_is_equiatomic(n):
    si, hea = build_cell("si", n), build_cell("hea", n)
    for atoms in (si, hea):
        assert abs(len(atoms) - n) <= 0.06 * n, len(atoms)
    assert set(si.get_chemical_symbols()) == {"Si"}
    counts = Counter(hea.get_chemical_symbols())
    assert set(counts) == set(HEA) and max(counts.values()) - min(counts.values()) <= 1


def test_a_row_projected_past_the_memory_limit_is_skipped():
    res = subprocess.run([sys.executable, "-m", "benchmarks.scale", "--systems", "si", "--sizes", "64",
                          "216", "--dtype", "float32", "--threads", "1", "--warmup", "0", "--max-mem-gb", "0.001"],
                         cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"), stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert re.search(r"^\| si \| 64 \| [\d,]+ \| float32 \| 1 \| [\d.]+ \|", res.stdout, flags=re.M), res.stdout
    assert re.search(r"^\| si \| 216 \| \| float32 \| 1 \| skipped: projected peak [\d.]+ GB > --max-mem-gb 0.001",
                     res.stdout, flags=re.M), res.stdout
