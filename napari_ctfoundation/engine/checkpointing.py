"""Crash-safe training checkpoints shared by every trainer (sparse, generation, segmentation).

Layout under a run's ``checkpoints/`` folder::

    step_0000120/
        tensors.safetensors   every tensor / array of the training state
        log.*                 copy of the run's loss log up to this step (optional)
        state.json            the rest of the state (plain JSON) + size and SHA-256 of
                              each file above; written last, so it marks completion

A checkpoint is written into ``.tmp-step_*`` and renamed into place only once
complete, so a kill at any moment leaves either the previous checkpoints or
the new one, never a half-written one under a real name. The last ``keep``
are kept. Loading verifies sizes and checksums and skips a damaged one with a
one-line warning, falling back to the one before.

Nothing here unpickles: tensors come from safetensors, everything else from
JSON (optimizer and scheduler ``state_dict``s, RNG states are split into the
two), so a checkpoint from somewhere else cannot run code on load.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import numpy as np

from .atomic import TMP_PREFIX, atomic_write_bytes, fsync_dir

FORMAT = "ctfoundation-checkpoint/1"
FOLDER = "checkpoints"
PREFIX = "step_"
STATE_JSON = "state.json"
TENSORS = "tensors.safetensors"
PathLike = Union[str, os.PathLike]


class DamagedCheckpoint(Exception):
    """A checkpoint folder that is incomplete, truncated or fails its checksums."""


@dataclass
class Checkpoint:
    path: Path
    step: int
    state: Dict[str, Any]  # tensors restored in place (torch.Tensor / np.ndarray)
    files: Dict[str, Path] = field(default_factory=dict)  # extra files saved beside (e.g. the loss log)


# ---------------------------------------------------------- state <-> JSON
def _split(obj: Any, tensors: Dict[str, Any]) -> Any:
    """Replace tensors/arrays by references into ``tensors``; keep the JSON-able rest."""
    import torch

    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().clone().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        key = f"t{len(tensors)}"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"__ndarray__": key}
    if isinstance(obj, (bool, str, type(None))):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj)
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _split(v, tensors) for k, v in obj.items()}
        return {"__items__": [[_split(k, tensors), _split(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_split(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_split(v, tensors) for v in obj]
    raise TypeError(f"cannot checkpoint a {type(obj).__name__}")


def _join(obj: Any, tensors: Mapping[str, Any]) -> Any:
    if isinstance(obj, list):
        return [_join(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        return tensors[obj["__ndarray__"]].numpy()
    if "__tuple__" in obj:
        return tuple(_join(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_join(k, tensors): _join(v, tensors) for k, v in obj["__items__"]}
    return {k: _join(v, tensors) for k, v in obj.items()}


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------ saving
def checkpoint_name(step: int) -> str:
    return f"{PREFIX}{int(step):07d}"


def save_checkpoint(run_dir: PathLike, step: int, state: Mapping[str, Any], *,
                    files: Optional[Mapping[str, bytes]] = None, keep: int = 2) -> Path:
    """Write ``state`` (nested dicts/lists of tensors, arrays and JSON values) as ``checkpoints/step_N``.

    ``files`` are extra small files stored as given (a copy of the loss log).
    Only the newest ``keep`` checkpoints stay.
    """
    from safetensors.torch import save_file

    root = Path(run_dir) / FOLDER
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(TMP_PREFIX + "*"):  # left by a run killed mid-save
        shutil.rmtree(stale, ignore_errors=True)
    final = root / checkpoint_name(step)
    tmp = root / f"{TMP_PREFIX}{final.name}-{os.getpid()}"
    tmp.mkdir()
    try:
        tensors: Dict[str, Any] = {}
        meta = _split(dict(state), tensors)
        save_file(tensors, str(tmp / TENSORS), metadata={"format": FORMAT})
        for name, data in (files or {}).items():
            (tmp / name).write_bytes(data)
        written = [TENSORS] + sorted(files or {})
        for name in written:
            with open(tmp / name, "rb+") as fh:
                os.fsync(fh.fileno())
        manifest = {"format": FORMAT, "step": int(step), "state": meta,
                    "files": {n: {"bytes": (tmp / n).stat().st_size, "sha256": _digest(tmp / n)} for n in written}}
        atomic_write_bytes(tmp / STATE_JSON, json.dumps(manifest).encode())
        fsync_dir(tmp)
        _hook("before_rename")
        if final.exists():  # the same step saved again (e.g. a resumed run that had no further step)
            old = root / f"{TMP_PREFIX}old-{final.name}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        fsync_dir(root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for old in list_checkpoints(run_dir)[:-max(1, int(keep))]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _hook(point: str) -> None:
    """Test hook: ``CTFOUNDATION_CHECKPOINT_PAUSE=seconds`` holds a save open so a kill can land inside it."""
    pause = os.environ.get("CTFOUNDATION_CHECKPOINT_PAUSE")
    if pause:
        import time

        print(f"checkpoint-hook {point}", flush=True)
        time.sleep(float(pause))


# ----------------------------------------------------------------- loading
def list_checkpoints(run_dir: PathLike) -> List[Path]:
    """Checkpoint folders under ``run_dir/checkpoints`` whose names are complete, oldest first."""
    root = Path(run_dir) / FOLDER
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX):].isdigit():
            found.append((int(p.name[len(PREFIX):]), p))
    return [p for _, p in sorted(found)]


def read_checkpoint(path: PathLike) -> Checkpoint:
    """Load and verify one checkpoint folder; :class:`DamagedCheckpoint` if anything is off."""
    from safetensors.torch import load_file

    folder = Path(path)
    manifest_path = folder / STATE_JSON
    if not manifest_path.is_file():
        raise DamagedCheckpoint(f"no {STATE_JSON} (incomplete)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DamagedCheckpoint(f"{STATE_JSON} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DamagedCheckpoint(f"{STATE_JSON} is not a {FORMAT} manifest")
    for name, info in manifest.get("files", {}).items():
        f = folder / name
        if not f.is_file():
            raise DamagedCheckpoint(f"{name} is missing")
        if f.stat().st_size != info["bytes"]:
            raise DamagedCheckpoint(f"{name} has {f.stat().st_size} bytes, {info['bytes']} were written")
        if _digest(f) != info["sha256"]:
            raise DamagedCheckpoint(f"{name} fails its checksum")
    try:
        tensors = load_file(str(folder / TENSORS))
        state = _join(manifest["state"], tensors)
    except Exception as exc:  # a verified file that still fails: report, do not trust
        raise DamagedCheckpoint(f"unreadable ({type(exc).__name__}: {exc})") from None
    files = {n: folder / n for n in manifest["files"] if n not in (TENSORS,)}
    return Checkpoint(folder, int(manifest["step"]), state, files)


def latest_checkpoint(run_dir: PathLike, warn: Optional[Callable[[str], None]] = None) -> Optional[Checkpoint]:
    """The newest checkpoint that verifies; each damaged newer one is skipped with one warning line."""
    warn = warn or _warn
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return read_checkpoint(path)
        except DamagedCheckpoint as exc:
            warn(f"skipping damaged checkpoint {path}: {exc}")
    return None


def _warn(message: str) -> None:
    from .io import CTFoundationWarning

    warnings.warn(message, CTFoundationWarning, stacklevel=3)


def restore_file(checkpoint: Checkpoint, name: str, target: PathLike) -> bool:
    """Put the checkpoint's copy of ``name`` back at ``target`` (atomically). False if it has none."""
    src = checkpoint.files.get(name)
    if src is None:
        return False
    atomic_write_bytes(target, src.read_bytes())
    return True


# -------------------------------------------------------------- RNG states
def rng_state(numpy_generators: Mapping[str, np.random.Generator] = {},
              torch_generators: Mapping[str, Any] = {}) -> Dict[str, Any]:
    """Python, numpy (global), torch (CPU, CUDA) and the given generators' states, checkpointable."""
    import random

    import torch

    state: Dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(legacy=False),
        "torch": torch.get_rng_state(),
        "numpy_generators": {k: g.bit_generator.state for k, g in numpy_generators.items()},
        "torch_generators": {k: g.get_state() for k, g in torch_generators.items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: Mapping[str, Any], numpy_generators: Mapping[str, np.random.Generator] = {},
                  torch_generators: Mapping[str, Any] = {}) -> None:
    """Inverse of :func:`rng_state`."""
    import random

    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for k, g in numpy_generators.items():
        g.bit_generator.state = state["numpy_generators"][k]
    for k, g in torch_generators.items():
        g.set_state(state["torch_generators"][k])


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run side work (saving a model copy, a preview) without moving the training RNG streams,
    so a run resumed from a checkpoint draws exactly what the uninterrupted run drew."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


def describe(checkpoint: Checkpoint) -> str:
    """``resuming from RUN/checkpoints/step_0000120 (step 120)``: the line trainers report."""
    return f"resuming from {checkpoint.path} (step {checkpoint.step})"


__all__: Tuple[str, ...] = ("Checkpoint", "DamagedCheckpoint", "save_checkpoint", "read_checkpoint",
                            "latest_checkpoint", "list_checkpoints", "restore_file", "rng_state",
                            "set_rng_state", "describe", "checkpoint_name")
