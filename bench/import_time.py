"""How long ``import napari_ctfoundation`` takes (target: under 50 ms), and what it loads.

Each run is a fresh interpreter with ``-X importtime``; the figure is the
cumulative time Python reports for the ``napari_ctfoundation`` package
itself (interpreter start-up and ``site`` excluded). Also reports the wall
time of the first lookup of the main public names (``ctf.read_volume``,
``ctf.reconstruct_volume``, ...), which imports numpy and the engine modules
but not torch.

    python bench/import_time.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

HEAVY = ("torch", "itk", "napari", "diffusers", "transformers", "monai", "SimpleITK", "numpy")


def cumulative_us(code: str, module: str = "napari_ctfoundation") -> int:
    """Cumulative import time (microseconds) of ``module`` when running ``code``."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                         check=True)
    total = 0
    for line in out.stderr.splitlines():
        parts = [p.strip() for p in line.split("|")]
        # top-level entries of the package (no indentation) sum up to its cost
        if len(parts) == 3 and parts[2] == module:
            total += int(parts[1])
    return total


def first_use_ms(names: str) -> float:
    """Wall time of the first lookup of ``names`` on a freshly imported package."""
    code = ("import time, napari_ctfoundation as ctf\n"
            f"t = time.perf_counter(); {names}; print((time.perf_counter() - t) * 1000)")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.strip())


def loaded_after(code: str):
    probe = code + f"\nimport sys; print([m for m in {HEAVY!r} if m in sys.modules])"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    plain = "import napari_ctfoundation"
    names = "ctf.read_volume, ctf.HUWindow, ctf.reconstruct_volume, ctf.write_volume"
    touch = f"import napari_ctfoundation as ctf\n{names}"
    bare = [cumulative_us(plain) / 1000 for _ in range(args.runs)]
    print(f"import napari_ctfoundation: median {statistics.median(bare):.2f} ms, max {max(bare):.2f} ms "
          f"over {args.runs} runs (target < 50 ms)")
    print(f"  heavy modules loaded: {loaded_after(plain)}")
    used = [first_use_ms(names) for _ in range(max(3, args.runs // 3))]
    print(f"first lookup of read_volume, HUWindow, reconstruct_volume, write_volume: median "
          f"{statistics.median(used):.0f} ms (loads the engine modules and numpy, not torch)")
    print(f"  heavy modules loaded: {loaded_after(touch)}")


if __name__ == "__main__":
    main()
