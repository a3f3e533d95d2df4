"""napari reader, writer and sample-data hooks (npe2 contributions in napari.yaml).

Reader
    ``get_reader(path)`` accepts NIfTI/NRRD/MHA/MHD/DICOM files and DICOM
    folders and returns None for anything else (napari's contract). Reading
    itself happens in the returned function; if the file turns out to be
    broken (truncated gzip, NaN voxels, missing DICOM slices...) it shows the
    engine's one-line message as a napari notification and returns the
    "nothing to add" sentinel ``[(None,)]``: no traceback, no zero volume.

    Volumes are shown in display orientation (``Volume.to_display``: patient
    right on the image left, anterior at the top) with ``scale`` = spacing
    and ``translate`` = origin, so a CT and its labels overlay exactly
    whatever orientation each file was stored in.

    A volume is opened as **labels** when its file name says so (a name
    starting with ``organ``, ``label``, ``seg``, ``mask`` or ``lesion``, also
    after ``_``/``-``/``.``, e.g. ``ct_seg.nii.gz``), or when it is stored
    with an integer voxel type, holds no negative value and at most 256
    distinct values (a CT always has air below 0 HU). Everything else is a
    CT image in HU.

Writer
    Image or Labels layer -> NIfTI/NRRD/MHA with the geometry the reader
    stored in the layer's ``metadata``, back in the voxel layout of the
    source file (``Volume.to_source_orientation``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .engine.errors import CTFoundationError, VolumeReadError, VolumeWriteError
from .engine.volume import Volume

PathOrPaths = Union[str, Sequence[str]]
LayerData = Tuple[Any, Dict[str, Any], str]

#: napari axis names and units of every layer we add: [z, y, x] in millimetres (scale = spacing)
AXIS_LABELS = ("z", "y", "x")
AXIS_UNITS = ("mm", "mm", "mm")

LABEL_NAME = re.compile(r"(^|[_\-.])(organ|label|seg|mask|lesion)", re.IGNORECASE)
DEFAULT_WINDOW = "ct"  # [-1000, 1000] HU


# ------------------------------------------------------------------ reader
def get_reader(path: PathOrPaths) -> Optional[Callable[[PathOrPaths], List[LayerData]]]:
    """npe2 reader hook: a read function for CT volumes, or None."""
    from .engine.io import looks_like_volume

    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None  # stacks of files are not a CT volume we know
        path = path[0]
    p = Path(str(path))
    if not p.exists():
        return None
    try:
        if not looks_like_volume(p):
            return None
    except OSError:
        return None
    if p.is_file() and p.stat().st_size == 0:
        return None
    return read_layers


def read_layers(path: PathOrPaths) -> List[LayerData]:
    """Read ``path`` into napari layer data; errors become a notification."""
    if isinstance(path, (list, tuple)):
        path = path[0]
    try:
        return [volume_layer_data(path)]
    except CTFoundationError as exc:
        _notify_error(str(exc))
    except MemoryError:
        _notify_error(f"{path}: not enough memory to read this volume")
    return [(None,)]  # napari's "read, nothing to add" sentinel


def is_label_path(path: Union[str, os.PathLike]) -> bool:
    """The file-name half of the labels rule (see module docstring)."""
    name = Path(str(path)).name
    return bool(LABEL_NAME.search(name))


def _stored_as_integer(path: Path) -> bool:
    """True when a file's voxel type is integer (header only, no voxel read)."""
    if path.is_dir():
        return False  # DICOM series: CT with rescale applied
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return False
    pixel = sitk.GetPixelIDValueAsString(reader.GetPixelID()).lower()
    return "int" in pixel and "float" not in pixel


def _looks_like_label_values(array: np.ndarray) -> bool:
    if array.size == 0 or array.min() < 0 or array.max() >= 65536:
        return False
    if not np.array_equal(array, np.round(array)):
        return False
    counts = np.bincount(array.ravel().astype(np.int64), minlength=1)
    return int(np.count_nonzero(counts)) <= 256


def volume_layer_data(path: Union[str, os.PathLike], *, as_labels: Optional[bool] = None) -> LayerData:
    """One layer-data tuple for ``path``: an Image (HU) or a Labels layer.

    ``as_labels`` forces the kind; None applies the labels rule.
    """
    from .engine.io import read_labels, read_volume

    p = Path(str(path))
    if as_labels is None:
        as_labels = is_label_path(p)
        if not as_labels and _stored_as_integer(p):
            volume = read_volume(p)
            if _looks_like_label_values(volume.array):
                top = int(volume.array.max())
                volume.array = volume.array.astype(np.uint8 if top < 256 else np.uint16)
                return labels_layer_data(volume, p)
            return image_layer_data(volume, p)
    if as_labels:
        vocabulary = "lesions" if "lesion" in p.name.lower() else "organs"
        return labels_layer_data(read_labels(p), p, vocabulary=vocabulary)
    return image_layer_data(read_volume(p), p)


def _base_metadata(display: Volume, path: Path, kind: str) -> Dict[str, Any]:
    meta = {
        key: value
        for key, value in display.metadata.items()
        if key in ("source_format", "dicom", "n_files")
    }
    meta.update(
        kind=kind,
        source_path=str(path),
        source_orientation=display.metadata.get("source_orientation"),
        geometry=display.geometry_dict(),
    )
    return meta


def _layer_name(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def image_layer_data(volume: Volume, path: Union[str, os.PathLike], *,
                     name: Optional[str] = None, window: str = DEFAULT_WINDOW) -> LayerData:
    """Image layer data for a CT volume, in display orientation."""
    from .engine.window import HUWindow

    p = Path(str(path))
    display = volume.to_display()
    hu_window = HUWindow.from_preset(window)
    meta = _base_metadata(display, p, "ct")
    meta["window"] = window
    kwargs = {
        "name": name or _layer_name(p),
        "scale": display.napari_scale(),
        "translate": display.napari_translate(),
        "contrast_limits": hu_window.contrast_limits,
        "colormap": "gray",
        "metadata": meta,
        "axis_labels": AXIS_LABELS,
        "units": AXIS_UNITS,
    }
    return display.array, kwargs, "image"


def labels_layer_data(volume: Volume, path: Union[str, os.PathLike], *,
                      name: Optional[str] = None, vocabulary: str = "organs") -> LayerData:
    """Labels layer data with organ names (features) and stable colours."""
    from .engine import labels as vocab

    p = Path(str(path))
    display = volume.to_display()
    ids = vocab.present_ids(display.array)
    meta = _base_metadata(display, p, "labels")
    meta["vocabulary"] = vocabulary
    meta["label_names"] = {int(i): vocab.label_name(i, vocabulary) for i in ids if i}
    kwargs = {
        "name": name or _layer_name(p),
        "scale": display.napari_scale(),
        "translate": display.napari_translate(),
        "features": vocab.features_table(display.array, vocabulary),
        "colormap": _direct_colormap(vocabulary, ids),
        "opacity": 0.5,
        "metadata": meta,
        "axis_labels": AXIS_LABELS,
        "units": AXIS_UNITS,
    }
    return display.array, kwargs, "labels"


def _direct_colormap(vocabulary: str, ids: List[int]):
    # napari is present whenever a reader runs; imported here so the module
    # itself stays importable headless (tests, CLI).
    from napari.utils.colormaps import DirectLabelColormap

    from .engine import labels as vocab

    colors: Dict[Any, Any] = {None: (0.5, 0.5, 0.5, 1.0)}
    colors.update(vocab.color_table(vocabulary, ids))
    return DirectLabelColormap(color_dict=colors)


def _notify_error(message: str) -> None:
    try:
        from napari.utils.notifications import show_error
    except ImportError:  # headless use
        import warnings

        warnings.warn(message, stacklevel=3)
        return
    show_error(message)


# ------------------------------------------------------------------ writer
def layer_to_volume(data: np.ndarray, meta: Dict[str, Any], *, labels: bool = False) -> Volume:
    """A layer (data + layer_data_tuple attributes) as a source-oriented Volume."""
    data = np.asarray(data)
    if data.ndim != 3:
        raise VolumeWriteError(
            f"layer {meta.get('name', '?')!r}: only 3D volumes can be saved, got shape {data.shape}"
        )
    layer_meta = dict(meta.get("metadata") or {})
    geometry = layer_meta.get("geometry")
    scale = meta.get("scale", (1.0, 1.0, 1.0))
    translate = meta.get("translate", (0.0, 0.0, 0.0))
    array = data if labels else data.astype(np.float32, copy=False)
    volume = None
    if geometry and list(geometry.get("shape_zyx", [])) == list(data.shape):
        candidate = Volume.from_geometry_dict(array, geometry)
        # the stored affine only holds while the layer was not moved/rescaled
        if np.allclose(candidate.napari_scale(), scale[-3:]) and np.allclose(
            candidate.napari_translate(), translate[-3:]
        ):
            volume = candidate
    if volume is None:
        volume = Volume.from_napari(array, scale, translate)
        source = layer_meta.get("source_orientation") or (geometry or {}).get("source_orientation")
        if source:
            volume.metadata["source_orientation"] = source
    return volume.to_source_orientation()


def write_layer(path: str, data: Any, meta: Dict[str, Any], *, labels: bool = False) -> List[str]:
    from .engine.io import write_volume

    source = (meta.get("metadata") or {}).get("source_path")
    try:
        volume = layer_to_volume(data, meta, labels=labels)
        if labels:
            top = int(volume.array.max()) if volume.array.size else 0
            dtype = np.uint8 if top < 256 else np.uint16 if top < 65536 else np.int32
            volume.array = volume.array.astype(dtype, copy=False)
        out = write_volume(volume, path, protect=(source,) if source else ())
    except CTFoundationError as exc:
        _notify_error(str(exc))
        return []
    return [str(out)]


def write_image(path: str, data: Any, meta: Dict[str, Any]) -> List[str]:
    """npe2 single-layer writer for Image layers."""
    return write_layer(path, data, meta)


def write_labels(path: str, data: Any, meta: Dict[str, Any]) -> List[str]:
    """npe2 single-layer writer for Labels layers (integer ids kept)."""
    return write_layer(path, data, meta, labels=True)


# ------------------------------------------------------------- sample data
SAMPLE_FILES = ("ct_abdomen_3mm/ct.nii.gz", "ct_abdomen_3mm/organs.nii.gz",
                "ct_dicom_series/dicom", "ct_dicom_series/organs.nii.gz")


def sample_data_dir() -> Path:
    """The two sample CTs, shipped inside the package (``data/samples/``, in every wheel).

    ``CTFOUNDATION_SAMPLE_DATA`` points elsewhere (a folder with the same layout).
    The repository's top-level ``sample_data/`` links to the package copy.
    Holds ``ct_abdomen_3mm/{ct,organs}.nii.gz`` and
    ``ct_dicom_series/{dicom/,organs.nii.gz}``. Raises
    :class:`VolumeReadError` when the files are missing.
    """
    override = os.environ.get("CTFOUNDATION_SAMPLE_DATA")
    candidates = [Path(override)] if override else []
    candidates.append(Path(__file__).resolve().parent / "data" / "samples")
    for candidate in candidates:
        if all((candidate / name).exists() for name in SAMPLE_FILES):
            return candidate
    raise VolumeReadError(
        f"sample data not found (looked in {', '.join(str(c) for c in candidates)}); "
        "the package ships it in napari_ctfoundation/data/samples: reinstall napari-ctfoundation, "
        "or set CTFOUNDATION_SAMPLE_DATA to a folder holding " + ", ".join(SAMPLE_FILES)
    )


def _sample(ct_path: Path, labels_path: Path, ct_name: str) -> List[LayerData]:
    from .engine.io import read_labels, read_volume

    ct = image_layer_data(read_volume(ct_path), ct_path, name=ct_name, window="soft_tissue")
    organs = labels_layer_data(read_labels(labels_path), labels_path, name=f"{ct_name} organs")
    return [ct, organs]


def sample_abdomen_3mm() -> List[LayerData]:
    """Abdominal CT 3 mm (TotalSegmentator test case) with its organ labels."""
    root = sample_data_dir() / "ct_abdomen_3mm"
    return _sample(root / "ct.nii.gz", root / "organs.nii.gz", "abdomen CT 3mm")


def sample_dicom_series() -> List[LayerData]:
    """512 x 512 DICOM series (20 slices) with its organ labels."""
    root = sample_data_dir() / "ct_dicom_series"
    return _sample(root / "dicom", root / "organs.nii.gz", "DICOM CT")
