"""Kill a real training subprocess with SIGKILL (between steps, and inside a checkpoint save), resume,
and get exactly what an uninterrupted run gets: same step count, same loss log, same tensors.

Each trainer (sparse DiCE, generation denoiser, segmentation) runs tiny synthetic data through
``tests/_reliability_worker.py``. Also: a damaged newest checkpoint is skipped with a one-line
warning, the module never unpickles, and the atomic writers leave no partial file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pytest

torch = pytest.importorskip("torch")

WORKER = Path(__file__).with_name("_reliability_worker.py")
ROOT = Path(__file__).resolve().parents[1]
MODEL_FILE = {"sparse": "model.safetensors", "gen": "model/denoiser.safetensors", "seg": "model.safetensors"}


def _env(pause: Optional[float] = None) -> Dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("CTFOUNDATION_CHECKPOINT_PAUSE", None)
    if pause:
        env["CTFOUNDATION_CHECKPOINT_PAUSE"] = str(pause)
    return env


def _worker(*args: str, kill_at: Optional[str] = None, pause: Optional[float] = None) -> List[str]:
    """Run the worker; with ``kill_at``, SIGKILL it as soon as it prints that line. Returns its stdout lines."""
    proc = subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(pause), cwd=ROOT)
    lines: List[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.strip())
        if kill_at is not None and line.strip() == kill_at:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=300)
    err = proc.stderr.read() if proc.stderr else ""
    if kill_at is None:
        assert proc.returncode == 0, err[-2000:]
        lines.append("stderr: " + err)
    else:
        assert proc.returncode == -signal.SIGKILL, f"not killed at {kill_at!r}: {lines[-3:]} {err[-1500:]}"
    return lines


def _log(kind: str, out: Path) -> list:
    """The loss log without wall-clock columns."""
    if kind == "sparse":
        rows = list(csv.DictReader(io.StringIO((out / "loss_log.csv").read_text())))
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    if kind == "gen":
        rows = [json.loads(l) for l in (out / "loss.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    return json.loads((out / "train_log.json").read_text())["losses"]


def _same_tensors(a: Path, b: Path) -> bool:
    from safetensors.torch import load_file

    x, y = load_file(str(a)), load_file(str(b))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.fixture(scope="module", params=["sparse", "gen", "seg"])
def reference(request, tmp_path_factory):
    """Synthetic data and one uninterrupted run of the ``kind`` trainer."""
    kind = request.param
    root = tmp_path_factory.mktemp(f"rel_{kind}")
    _worker("prepare", kind, str(root / "data"))
    _worker("train", kind, str(root / "data"), str(root / "reference"))
    return kind, root


@pytest.mark.slow
def test_sigkill_between_steps_and_inside_a_save_then_resume_matches(reference):
    kind, root = reference
    data, out, ref = root / "data", root / "killed", root / "reference"
    # 1. killed between checkpoints (step 3; checkpoints land at steps 2, 4, 6, 8)
    _worker("train", kind, str(data), str(out), kill_at="step 3")
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["step_0000002"]
    # 2. resumed, then killed inside the next save, after its files are written but before the rename
    lines = _worker("train", kind, str(data), str(out), kill_at="checkpoint-hook before_rename", pause=60)
    assert any(l.startswith(f"resuming from {out / 'checkpoints' / 'step_0000002'} (step 2") for l in lines)
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert len(names) == 2 and names[0].startswith(".tmp-step_0000004") and names[1] == "step_0000002"
    # 3. resumed to the end: the half-made checkpoint was never trusted
    lines = _worker("train", kind, str(data), str(out))
    assert any(l.startswith(f"resuming from {out / 'checkpoints' / 'step_0000002'} (step 2") for l in lines)
    assert [l for l in lines if l.startswith("step ")][-1] == "step 8"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_0000006", "step_0000008"]
    assert _log(kind, out) == _log(kind, ref)  # no duplicated, no missing steps
    assert _same_tensors(out / MODEL_FILE[kind], ref / MODEL_FILE[kind])


@pytest.mark.slow
def test_damaged_newest_checkpoint_is_skipped_with_one_warning(reference):
    kind, root = reference
    out = root / "damaged"
    shutil.copytree(root / "reference", out)
    newest = out / "checkpoints" / "step_0000008" / "tensors.safetensors"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    (out / MODEL_FILE[kind]).unlink()  # must be rebuilt by the resumed run
    lines = _worker("train", kind, str(root / "data"), str(out))
    stderr = lines[-1]
    warnings = [l for l in stderr.splitlines() if "skipping damaged checkpoint" in l]
    assert len(warnings) == 1 and "step_0000008" in warnings[0] and "bytes" in warnings[0]
    assert any(l.startswith("resuming from") and "step_0000006" in l for l in lines)
    assert _log(kind, out) == _log(kind, root / "reference")
    assert _same_tensors(out / MODEL_FILE[kind], root / "reference" / MODEL_FILE[kind])


# ------------------------------------------------------------ in-process
def test_checkpoint_round_trip_without_pickle(tmp_path):
    from napari_ctfoundation.engine.checkpointing import latest_checkpoint, rng_state, save_checkpoint, set_rng_state

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    gen = np.random.default_rng(5)
    state = {"opt": opt.state_dict(), "rng": rng_state({"g": gen}), "misc": {3: (1, 2.5, None, "x")}}
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, state, files={"log.csv": b"a\n"})
    assert [p.name for p in sorted((tmp_path / "checkpoints").iterdir())] == ["step_0000002", "step_0000003"]
    folder = tmp_path / "checkpoints" / "step_0000003"
    # nothing in a checkpoint is a pickle: JSON and safetensors only
    assert sorted(p.name for p in folder.iterdir()) == ["log.csv", "state.json", "tensors.safetensors"]
    assert b"\x80\x04" not in (folder / "tensors.safetensors").read_bytes()[:8]
    ckpt = latest_checkpoint(tmp_path)
    assert ckpt.step == 3 and ckpt.state["misc"] == {3: (1, 2.5, None, "x")}
    fresh = torch.optim.AdamW(model.parameters(), lr=1e-3)
    fresh.load_state_dict(ckpt.state["opt"])
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    expected = gen.random()
    set_rng_state(ckpt.state["rng"], {"g": gen})
    assert gen.random() == expected


@pytest.mark.parametrize("damage", ["truncate", "flip", "no-manifest", "bad-json"])
def test_each_kind_of_damage_is_detected(tmp_path, damage):
    from napari_ctfoundation.engine.checkpointing import latest_checkpoint, save_checkpoint

    for step in (1, 2):
        save_checkpoint(tmp_path, step, {"w": torch.arange(100.0) * step})
    folder = tmp_path / "checkpoints" / "step_0000002"
    tensors = folder / "tensors.safetensors"
    if damage == "truncate":
        tensors.write_bytes(tensors.read_bytes()[:-10])
    elif damage == "flip":
        data = bytearray(tensors.read_bytes())
        data[-5] ^= 0xFF
        tensors.write_bytes(bytes(data))
    elif damage == "no-manifest":
        (folder / "state.json").unlink()
    else:
        (folder / "state.json").write_text("{not json")
    seen: List[str] = []
    ckpt = latest_checkpoint(tmp_path, warn=seen.append)
    assert ckpt is not None and ckpt.step == 1 and torch.equal(ckpt.state["w"], torch.arange(100.0))
    assert len(seen) == 1 and "\n" not in seen[0] and "step_0000002" in seen[0]


def test_atomic_writers_leave_old_or_new_file_never_half(tmp_path):
    from napari_ctfoundation.engine.atomic import atomic_path, atomic_write_csv, atomic_write_json

    target = tmp_path / "table.csv"
    atomic_write_csv(target, ["a", "b"], [[1, 2], {"a": 3, "b": 4}])
    assert target.read_text().splitlines() == ["a,b", "1,2", "3,4"]
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text().splitlines()[0] == "a,b"  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]  # and no temp file is left
    atomic_write_json(tmp_path / "s.json", {"x": 1})
    assert json.loads((tmp_path / "s.json").read_text()) == {"x": 1}


def test_damaged_sparse_cache_entry_is_rebuilt_not_trusted(tmp_path):
    from napari_ctfoundation.engine.sparse.train import _cache_entry_intact

    key = json.dumps({"k": 1})
    good = tmp_path / "a.npz"
    np.savez(good, volume=np.zeros((2, 2, 2), np.float16), projections=np.ones((3, 2, 2), np.float16),
             meta=json.dumps({"key": {"k": 1}}))
    assert _cache_entry_intact(good, key)
    assert not _cache_entry_intact(good, json.dumps({"k": 2}))  # another CT's entry
    data = bytearray(good.read_bytes())
    bad = tmp_path / "b.npz"
    bad.write_bytes(bytes(data[: len(data) // 2]))
    assert not _cache_entry_intact(bad, key)
    at = data.find(b"\x00\x3c")  # inside the float16 ones of "projections"
    data[at + 1] ^= 0x10
    bad.write_bytes(bytes(data))
    assert not _cache_entry_intact(bad, key)  # zip CRC catches a flipped bit
