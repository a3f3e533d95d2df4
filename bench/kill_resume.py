"""SIGKILL training runs at random moments, resume each time, and count how many end identical to an
uninterrupted run (same steps, same loss log, bit-identical weights).

    python bench/kill_resume.py --kinds sparse,gen,seg --rounds 5 --kills 3 --seed 0

For each kind: one uninterrupted reference run, then ``rounds`` times a fresh
run that is killed ``kills`` times at a random delay (half of them while a
checkpoint save is held open by ``CTFOUNDATION_CHECKPOINT_PAUSE``), resumed
after each kill, and finally run to the end. Uses the tiny synthetic
trainers of ``tests/_reliability_worker.py``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_reliability_checkpoints import MODEL_FILE, WORKER, _log, _same_tensors  # noqa: E402


def _start(args, pause=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("CTFOUNDATION_CHECKPOINT_PAUSE", None)
    if pause:
        env["CTFOUNDATION_CHECKPOINT_PAUSE"] = str(pause)
    return subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)


def _killed_run(args, rng, in_save: bool) -> str:
    """Start a run and SIGKILL it: inside a save (at the hook) or after a random number of steps."""
    proc = _start(args, pause=30 if in_save else None)
    target = "checkpoint-hook before_rename" if in_save else f"step {int(rng.integers(1, 9))}"
    for line in proc.stdout:
        if line.strip() == target or line.strip() == "done":
            break
    if not in_save:
        time.sleep(float(rng.uniform(0, 0.5)))  # land anywhere inside the next step or save
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default="sparse,gen,seg")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    work = Path(tempfile.mkdtemp(prefix="ctf-kill-"))
    print(f"{'trainer':<8}{'rounds':>7}{'kills':>7}{'in save':>9}{'identical':>11}")
    total_fail = 0
    for kind in args.kinds.split(","):
        data, ref = work / kind / "data", work / kind / "reference"
        subprocess.run([sys.executable, str(WORKER), "prepare", kind, str(data)], check=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True)
        subprocess.run([sys.executable, str(WORKER), "train", kind, str(data), str(ref)], check=True,
                       env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT)), capture_output=True)
        kills = in_save = same = 0
        for r in range(args.rounds):
            out = work / kind / f"round{r}"
            for _ in range(args.kills):
                save = bool(rng.random() < 0.5)
                _killed_run(["train", kind, str(data), str(out)], rng, save)
                kills += 1
                in_save += save
            subprocess.run([sys.executable, str(WORKER), "train", kind, str(data), str(out)], check=True,
                           env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT)), capture_output=True)
            ok = _log(kind, out) == _log(kind, ref) and _same_tensors(out / MODEL_FILE[kind], ref / MODEL_FILE[kind])
            same += ok
        total_fail += args.rounds - same
        print(f"{kind:<8}{args.rounds:>7}{kills:>7}{in_save:>9}{same:>8}/{args.rounds}")
    return 1 if total_fail else 0


if __name__ == "__main__":
    sys.exit(main())
