"""bench/gpu.py runs end to end at tiny sizes on the CPU, so it does not first break on a GPU day (issue 13)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_gpu_smoke_prints_one_full_table():
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--smoke", "--device", "cpu"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [line for line in run.stdout.splitlines() if line.startswith("| ")]
    items = [line.split("|")[1].strip() for line in lines[1:]]
    assert lines[0].split("|")[1].strip() == "item"
    assert [i.split()[0] for i in items] == ["TAEF2", "TAEF2", "DiCE", "DiCE", "generation", "sparse"]
    by_item = {i: line for i, line in zip(items, lines[1:])}
    assert "skipped: bf16 is GPU-only" in by_item["TAEF2 bf16"]
    assert "PSNR" in by_item["TAEF2 fp32"] and "nan" not in by_item["TAEF2 fp32"]
    fast = next(line for i, line in by_item.items() if i.endswith(" fast"))
    assert "PSNR vs dense" in fast and "dense/fast" in fast
    assert "steps/s" in by_item["sparse train (tiny), batch 2"]
    assert "nan steps/s" not in by_item["sparse train (tiny), batch 2"]


def test_bench_gpu_rejects_an_unknown_row():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--smoke", "--device", "cpu",
                          "--only", "taef3"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and run.stderr.strip().startswith("error: --only taef3")
