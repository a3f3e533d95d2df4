"""Writing an nnU-Net v2 raw dataset (imagesTr, labelsTr, dataset.json).

``mode`` picks what goes in: ``originals``, ``reconstructions`` (the VAE
reconstructions written by ``batch reconstruct``, found by mirrored path) or
``both``: every original plus its reconstruction as an augmentation copy
``NAME_recon`` with the same label map. With ``both``, a copy must never sit
in another cross-validation fold than its original (that would leak the
patient), so a ``splits_final.json`` grouping each pair is written beside
dataset.json; copy it to ``nnUNet_preprocessed/DatasetXXX_NAME/``.

nnU-Net needs consecutive label ids; ``classes`` maps the chosen source ids
to 1..K (everything else becomes background).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import ConfigError, GeometryError
from ..progress import CancelCheck, ProgressCallback, Tracker
from .dataset import Case

MODES = ("originals", "reconstructions", "both")
RECON_SUFFIX = "_recon"


def dataset_folder(out_root: os.PathLike, dataset_id: int, name: str) -> Path:
    if not 1 <= int(dataset_id) <= 999:
        raise ConfigError(f"--dataset-id {dataset_id}: nnU-Net dataset ids run from 1 to 999")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ConfigError(f"--name {name!r}: use letters, digits, '_' and '-' only")
    return Path(out_root) / f"Dataset{int(dataset_id):03d}_{name}"


def export_nnunet(
    cases: Sequence[Case],
    out_root: os.PathLike,
    *,
    dataset_id: int,
    name: str,
    mode: str = "originals",
    recon_dir: Optional[os.PathLike] = None,
    classes: Optional[Dict[int, str]] = None,
    label_names: Optional[Dict[int, str]] = None,
    n_folds: int = 5,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
) -> Path:
    """Write the dataset; returns its folder. Cases need labels.

    Writes ``out_root/DatasetXXX_NAME`` in nnU-Net v2 raw layout
    (``imagesTr``, ``labelsTr``, ``dataset.json``; with ``both`` also ``splits_final.json``)
    with the originals, the reconstructions from ``recon_dir`` (the OUT_DIR
    of a batch reconstruction), or both. ``classes`` keeps and renumbers
    organ ids. Raises :class:`ConfigError` for a bad id, name or mode,
    cases without labels or reconstructions, and :class:`GeometryError`
    when a label map or reconstruction is off the image's grid.
    """
    from ..io import read_labels, read_volume, suffix_of, write_volume
    from ..volume import Volume

    if mode not in MODES:
        raise ConfigError(f"--mode {mode!r}: use one of {', '.join(MODES)}")
    if mode != "originals" and recon_dir is None:
        raise ConfigError(f"--mode {mode}: needs --recon-dir (the OUT_DIR of 'batch reconstruct')")
    missing = [c.name for c in cases if c.label is None]
    if missing:
        raise ConfigError(f"cases without a label map: {', '.join(missing[:5])}; "
                          "nnU-Net training data needs labels (use an nnU-Net folder or a manifest with 'label')")
    folder = dataset_folder(out_root, dataset_id, name)
    images, labels_dir = folder / "imagesTr", folder / "labelsTr"
    images.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(parents=True, exist_ok=True)

    # source id -> consecutive training id
    if classes:
        mapping = {int(src): i + 1 for i, src in enumerate(sorted(classes))}
        names = {i + 1: classes[src] for i, src in enumerate(sorted(classes))}
    else:
        mapping, names = None, None
    seen_ids: set = set()
    groups: List[List[str]] = []
    tracker = Tracker(len(cases), "cases", progress, cancel)
    for case in cases:
        ident = _identifier(case.name)
        image = read_volume(case.image)
        label = read_labels(case.label)
        if not label.same_grid(image):
            relabel = label.reoriented(image.orientation_code())
            if not relabel.same_grid(image):
                raise GeometryError(f"{case.label}: label map is not on the grid of {case.image}")
            label = relabel
        arr = label.array
        if mapping is not None:
            lut = np.zeros(int(max(arr.max(), max(mapping))) + 1, dtype=np.uint8)
            for src, dst in mapping.items():
                lut[src] = dst
            arr = lut[arr]
        else:
            seen_ids.update(np.unique(arr).tolist())
        label_vol = Volume(arr.astype(np.uint8 if arr.max() < 256 else np.uint16), image.spacing,
                           image.origin, image.direction)
        group = []
        if mode in ("originals", "both"):
            target = images / f"{ident}_0000.nii.gz"
            if suffix_of(case.image) == ".nii.gz":
                _atomic_copy(case.image, target)  # bytes untouched
            else:
                write_volume(image, target, protect=(case.image,))
            write_volume(label_vol, labels_dir / f"{ident}.nii.gz")
            group.append(ident)
        if mode in ("reconstructions", "both"):
            recon_path = case.output_path(recon_dir)
            if not recon_path.exists():
                raise ConfigError(f"{recon_path}: no reconstruction for case {case.name}; "
                                  "run 'ctfoundation batch reconstruct' on the same dataset first")
            recon = read_volume(recon_path)
            if not recon.same_grid(image):
                raise GeometryError(f"{recon_path}: reconstruction is not on the grid of {case.image}")
            rid = ident if mode == "reconstructions" else ident + RECON_SUFFIX
            write_volume(recon, images / f"{rid}_0000.nii.gz", protect=(recon_path,))
            write_volume(label_vol, labels_dir / f"{rid}.nii.gz")
            group.append(rid)
        groups.append(group)
        tracker.advance()

    if names is None:
        table = label_names or {}
        names = {int(i): table.get(int(i), f"label_{int(i)}") for i in sorted(seen_ids) if i != 0}
        ids = sorted(names)
        if ids and ids != list(range(1, len(ids) + 1)):
            raise ConfigError(
                f"label ids {ids[:8]}... are not consecutive, which nnU-Net requires; "
                "choose the classes to export (--classes), they are renumbered 1..K")
    labels_json = {"background": 0, **{names[i]: i for i in sorted(names)}}
    n_training = sum(len(g) for g in groups)
    dataset = {
        "channel_names": {"0": "CT"},
        "labels": labels_json,
        "numTraining": n_training,
        "file_ending": ".nii.gz",
        "name": name,
        "description": f"written by napari-ctfoundation batch nnunet-export, mode={mode}",
        "ctfoundation": {
            "mode": mode,
            "source_label_ids": {names[dst]: src for src, dst in mapping.items()} if mapping else None,
            "recon_dir": str(recon_dir) if recon_dir else None,
            "augmentation_groups": groups if mode == "both" else None,
        },
    }
    _write_json(folder / "dataset.json", dataset)
    if mode == "both":
        _write_json(folder / "splits_final.json", grouped_splits(groups, n_folds))
    return folder


def grouped_splits(groups: List[List[str]], n_folds: int = 5, seed: int = 12345) -> List[dict]:
    """nnU-Net splits where all copies of one case stay in one fold."""
    k = max(2, min(n_folds, len(groups)))
    if len(groups) < 2:
        return []
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    folds = [order[i::k] for i in range(k)]
    splits = []
    for f in range(k):
        val = [ident for gi in folds[f] for ident in groups[gi]]
        train = [ident for j in range(k) if j != f for gi in folds[j] for ident in groups[gi]]
        splits.append({"train": sorted(train), "val": sorted(val)})
    return splits


def _identifier(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "_", name).strip("_") or "case"


def _atomic_copy(src: os.PathLike, dst: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".nii.gz", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        from .runner import public_mode

        os.chmod(tmp, public_mode())
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_json(path: Path, obj) -> None:
    from .runner import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=2))
