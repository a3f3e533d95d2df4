"""How fast the CLI refuses what a new user gets wrong (issue 14): seconds and stderr lines per case.

Each case runs ``python -m napari_ctfoundation.cli`` in a subprocess, as a
user would, and prints the wall time, the exit code and how many lines it
wrote to stderr. Run from the repository root:

    python bench/first_hour_cli.py

The figures include the interpreter's start and the imports, so they follow
the machine's load; the line counts do not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CT = REPO / "sample_data" / "ct_abdomen_3mm" / "ct.nii.gz"
DICOM = REPO / "sample_data" / "ct_dicom_series" / "dicom"


def run(label: str, args, env=None) -> None:
    full_env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "napari_ctfoundation.cli", *map(str, args)],
                          capture_output=True, text=True, env=full_env)
    seconds = time.perf_counter() - start
    lines = [line for line in done.stderr.replace("\r", "\n").splitlines() if line.strip()]
    print(f"{label:<46} {seconds:6.1f} s  exit {done.returncode}  {len(lines)} stderr line(s)")
    if lines:
        print(f"{'':<46} last: {lines[-1][:110]}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        hub = "nonexistent-org/nonexistent-vae"
        run("unknown hub id, HF_HUB_OFFLINE=1", ["reconstruct", CT, tmp / "o.nii.gz", "--vae", hub],
            {"HF_HUB_OFFLINE": "1"})
        run("unknown hub id, no network (DNS fails)", ["reconstruct", CT, tmp / "o.nii.gz", "--vae", hub],
            {"HF_HUB_OFFLINE": "0"})
        run("unknown hub id, HF_ENDPOINT refuses", ["reconstruct", CT, tmp / "o.nii.gz", "--vae", hub],
            {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"})
        run("output .png", ["reconstruct", CT, tmp / "out" / "x.png"])
        run("output inside the DICOM input folder", ["reconstruct", DICOM, DICOM / "recon.nii.gz"])
        run("--window -160,240 (missing input)", ["reconstruct", tmp / "missing.nii.gz", tmp / "o.nii.gz",
                                                  "--window", "-160,240"])


if __name__ == "__main__":
    main()
