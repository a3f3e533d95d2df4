"""Guards around the image readers: quiet ITK, true reasons, no huge allocations from tiny files.

* ITK's C++ code (MetaIO, GDCM, NIfTI) prints to file descriptor 2, past
  Python: :func:`quiet_itk` captures it so the one-line error can carry the
  useful part instead.
* ITK exceptions often end in ``Reason: No such file or directory`` left over
  from an unrelated ``errno``; :func:`itk_reason` drops that for files that exist.
* :func:`check_image_header` reads only the header and refuses, before any
  voxel is allocated, an image that cannot fit in the available memory or
  whose file holds less voxel data than its header describes (ITK pads a
  truncated NIfTI with zeros without a word).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import sys
import tempfile
import threading
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Type, TypeVar

import numpy as np

from .errors import ConfigError, VolumeReadError

T = TypeVar("T")

# Peak memory of a read, in bytes per voxel beyond the file's own type: the
# ITK image, its numpy copy and the float32 HU array.
FLOAT_COPY_BYTES = 4
_capture_lock = threading.RLock()  # re-entrant: a guarded reader may call another


class Captured:
    """Lines written to the captured stream so far (iterate it, also inside the ``with``)."""

    def __init__(self, sink=None) -> None:
        self._sink = sink

    def __iter__(self) -> Iterator[str]:
        if self._sink is None or self._sink.closed:
            return iter(())
        self._sink.seek(0)
        text = self._sink.read().decode("utf-8", errors="replace")
        return iter([line.strip() for line in text.splitlines() if line.strip()])


@contextlib.contextmanager
def quiet_itk() -> Iterator[Captured]:
    """Capture what native code writes to stderr (fd 2) meanwhile, instead of showing it."""
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    with _capture_lock:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no real stderr (embedded, pythonw)
            yield Captured()
            return
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield Captured(sink)
            finally:
                os.dup2(saved, 2)
                os.close(saved)



_NOISE = (
    re.compile(r"^Exception thrown in SimpleITK"),
    re.compile(r"^/.*\.(hxx|cxx|h|cpp):\d+:?$"),  # source-file banner
    re.compile(r"^Tried to create one of the following"),
    re.compile(r"^\w+ImageIO$"),
    re.compile(r"^You probably failed to set a file suffix"),
    re.compile(r"^set the suffix to an unsupported type"),
    re.compile(r"MET_Read Failed|^Error parsing file$|^Cannot parse file$"),
)


def itk_reason(exc: BaseException, chatter: Iterable[str] = (), path: Optional[Path] = None) -> str:
    """The informative part of an ITK failure, on one line; never a stale errno for an existing file."""
    lines: List[str] = []
    for raw in list(chatter) + str(exc).splitlines():
        line = raw.strip()
        line = re.sub(r"^ITK ERROR: \w+\(0x[0-9a-f]+\): ", "", line)
        line = re.sub(r"^(MetaImage|MetaObject|MetaIO)[:\w ]*: (M_\w+: )?", "", line)
        line = re.sub(r"^\w+ImageIO \(0x[0-9a-f]+\): ", "", line)
        line = re.sub(r"^sitk::ERROR: ", "", line)
        if path is not None:  # the path is already at the start of our message
            line = line.replace(f'"{path}"', path.name).replace(str(path), path.name)
        if not line or any(p.search(line) for p in _NOISE):
            continue
        if path is not None and path.exists() and "No such file or directory" in line:
            continue  # errno from an earlier, unrelated call: the file is there
        if line not in lines:
            lines.append(line)
    if not lines:
        return "the file's format or header is not valid"
    reason = "; ".join(lines[:3])
    return reason if len(reason) <= 300 else reason[:297] + "..."


# --------------------------------------------------------- header checks
def available_memory() -> int:
    """Bytes the process can still allocate (psutil's ``available``)."""
    import psutil

    return int(psutil.virtual_memory().available)


def check_size(path: Path, size: Sequence[int], bytes_per_voxel: int, what: str = "header") -> None:
    """Refuse an image whose in-memory size exceeds the available memory, before allocating it."""
    dims = [int(s) for s in size]
    if any(s < 0 for s in dims):
        raise VolumeReadError(f"{path}: the {what} gives a negative image size {tuple(dims)}")
    voxels = float(np.prod(np.asarray(dims, dtype=np.float64)))
    need = voxels * (2 * bytes_per_voxel + FLOAT_COPY_BYTES)
    free = available_memory()
    if need > free:
        shape = " x ".join(str(s) for s in dims)
        raise VolumeReadError(
            f"{path}: the {what} claims a {shape} image ({need / 1e9:.3g} GB to read), more than the "
            f"{free / 1e9:.3g} GB of memory available; refusing to read it"
        )


def check_image_header(path: Path, fmt: str, decompressed: Optional[int] = None) -> None:
    """Read only ``path``'s header (quietly) and apply the memory and truncation checks.

    ``decompressed``: the uncompressed size of a gzip file, when the caller already streamed it.
    """
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    with quiet_itk() as chatter:
        try:
            reader.ReadImageInformation()
        except RuntimeError as exc:
            reason = itk_reason(exc, chatter, path)
            raise VolumeReadError(f"{path}: not a readable image (as a {_format_name(fmt)}: {reason})") from None
    size = reader.GetSize()
    if not 2 <= reader.GetDimension() <= 5:
        raise VolumeReadError(f"{path}: the header gives {reader.GetDimension()} dimensions; a CT volume has 3")
    component = sitk.Image([1] * reader.GetDimension(), reader.GetPixelID()).GetSizeOfPixelComponent()
    bytes_per_voxel = component * max(1, reader.GetNumberOfComponents())
    check_size(path, size, bytes_per_voxel)
    need = float(np.prod(np.asarray(size, dtype=np.float64))) * bytes_per_voxel
    have = _raw_bytes(path, fmt, decompressed)
    if have is not None and have < need:
        raise VolumeReadError(
            f"{path}: truncated: the header describes {int(need)} bytes of voxel data, the file holds {have}"
        )


def _format_name(fmt: str) -> str:
    return {"nii": "NIfTI file", "nii.gz": "NIfTI file", "nrrd": "NRRD file", "nhdr": "NRRD header",
            "mha": "MetaImage file", "mhd": "MetaImage header", "dicom": "DICOM file"}.get(fmt, "image")


def _raw_bytes(path: Path, fmt: str, decompressed: Optional[int] = None) -> Optional[int]:
    """Bytes of uncompressed voxel data the file really holds; None where that is not known cheaply."""
    try:
        if fmt in ("nii", "nii.gz"):
            offset = nifti_data_offset(path)
            size = path.stat().st_size if fmt == "nii" else decompressed if decompressed is not None else _gzip_size(path)
            return max(0, size - offset)
        if fmt in ("mha", "mhd"):
            return _meta_raw_bytes(path)
        if fmt == "nrrd":
            return _nrrd_raw_bytes(path)
    except Exception:  # a header another library cannot parse: no verdict here, ITK decides
        return None
    return None


@contextlib.contextmanager
def quiet_nibabel() -> Iterator[None]:
    """Silence nibabel's header-repair log lines ("qform_code 7 not valid; setting to 0")."""
    import logging

    logger = logging.getLogger("nibabel.global")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def nifti_data_offset(path: Path) -> int:
    """Where a NIfTI file's voxels start (nibabel's header parser, quietly)."""
    import nibabel as nib

    with quiet_nibabel():
        return int(nib.load(str(path)).dataobj.offset)  # the image's header copy has vox_offset reset to 0


def _gzip_size(path: Path) -> int:
    import gzip

    total = 0
    with gzip.open(path, "rb") as fh:
        while True:
            block = fh.read(1 << 24)
            if not block:
                return total
            total += len(block)


def _header_text(path: Path, limit: int = 1 << 16) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(limit)


def _meta_raw_bytes(path: Path) -> Optional[int]:
    head = _header_text(path)
    fields = dict(re.findall(rb"^\s*(\w+)\s*=\s*(.*?)\s*$", head.split(b"ElementDataFile")[0], re.M))
    if fields.get(b"CompressedData", b"False").lower() == b"true":
        return None
    match = re.search(rb"^\s*ElementDataFile\s*=\s*(.*?)[ \t]*\r?\n", head, re.M)
    if not match:
        return None
    target = match.group(1).decode("utf-8", errors="replace")
    if target == "LOCAL":
        return path.stat().st_size - match.end()
    data = path.parent / target
    if target.startswith(("LIST", "%")) or not data.is_file():
        return None
    return data.stat().st_size


def _nrrd_raw_bytes(path: Path) -> Optional[int]:
    head = _header_text(path)
    end = head.find(b"\n\n")
    if end < 0 or re.search(rb"^data ?file:", head[:end], re.M | re.I):
        return None
    encoding = re.search(rb"^encoding:\s*(\w+)", head[:end], re.M | re.I)
    if encoding is None or encoding.group(1).lower() != b"raw":
        return None
    return path.stat().st_size - (end + 2)


# ------------------------------------------------------------ text tables
def read_text_table(path: Path, parse: Callable[[Path], T], what: str = "CSV",
                    error: Type[ConfigError] = ConfigError) -> T:
    """``parse(path)``, with undecodable bytes or a malformed CSV reported as one ``error`` line naming the file.

    ``what`` names the file in the malformed-CSV message ("damaged {what}").
    """
    try:
        return parse(path)
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except csv.Error as exc:
        raise error(f"{path}: damaged {what} ({exc})") from None


# ---------------------------------------------------- configs and weights
def read_json_object(path: Path, what: str = "config") -> dict:
    """A JSON object from ``path``; :class:`ConfigError` naming the file for anything else."""
    from .errors import ConfigError

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: damaged {what} (not valid JSON: {str(exc).splitlines()[0]})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: unreadable {what} ({exc.strerror or exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: damaged {what} (a JSON object is expected)")
    return data


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of ``exc``'s message (its type's name if the message is empty), at most ``limit`` characters."""
    return (str(exc).splitlines() or [type(exc).__name__])[0][:limit]


def build_checked(build, weights: Path, config_path: Path, what: str = "model", mismatch: Optional[str] = None):
    """``build()`` a torch module only after its shapes, built on the meta device, match ``weights``' header.

    A damaged or hostile config can then neither allocate a huge network nor
    fail deep inside torch: it gets one :class:`ConfigError` line.
    ``mismatch``: the start of the message for weights that do not fit (the
    missing, unexpected and wrong-shaped keys follow in parentheses).
    """
    import torch
    from safetensors import safe_open

    from .errors import ConfigError, CTFoundationError

    try:
        with torch.device("meta"):
            own = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    except CTFoundationError:
        raise
    except Exception as exc:  # wrong types or values in the config
        first = (str(exc).splitlines() or [""])[0][:200]
        raise ConfigError(f"{config_path}: invalid {what} config ({type(exc).__name__}: {first})") from None
    try:
        with safe_open(str(weights), framework="pt") as fh:
            theirs = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    except Exception as exc:  # safetensors raises its own error types
        raise ConfigError(f"{weights}: damaged weights file ({_first_line(exc)})") from None
    if own != theirs:
        missing = sorted(set(own) - set(theirs))
        wrong = sorted(k for k in set(own) & set(theirs) if own[k] != theirs[k])
        extra = sorted(set(theirs) - set(own))
        detail = "; ".join(f"{n}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                           for n, keys in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong)) if keys)
        head = mismatch or f"{weights}: weights do not fit {config_path.name}"
        raise ConfigError(f"{head} ({detail})")
    return build()


def load_weights(weights: Path):
    """``safetensors.torch.load_file`` with damage reported as one :class:`ConfigError` line."""
    from safetensors.torch import load_file

    from .errors import ConfigError

    try:
        return load_file(str(weights))
    except Exception as exc:
        raise ConfigError(f"{weights}: damaged weights file ({_first_line(exc)})") from None
