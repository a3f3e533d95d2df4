"""Reconstruction straight into a file: the output never exists as a whole in RAM.

``reconstruct_to_file`` reconstructs slab by slab into a disk-backed scratch
array (``numpy.lib.format.open_memmap``, a ``.tmp-*.npy`` file in the
output's folder), computes the metrics from it slab-wise, then writes the
final volume from it:

* ``.nii`` / ``.nii.gz``: header by nibabel, voxels one source-layout slice
  at a time (the source orientation is a permuted/flipped *view* of the
  scratch array, see :func:`oriented_view`), so the write adds one slice.
* ``.nrrd`` / ``.mha``: the existing :func:`engine.io.write_volume`, which
  goes through ``SimpleITK.GetImageFromArray`` and so holds one full
  in-RAM copy while writing (no streaming writer for these formats here).

The final file appears only when complete (temp file + ``os.replace``, as
:mod:`engine.atomic`); an existing output is untouched by a failed or
cancelled run. Scratch files are removed on success, error and cancel; a
killed process leaves at most ``.tmp-*`` files, never a partial output.

Peak memory: the input (float32) and one slab's working set. Pages of a
memmap that were touched count as the process's resident memory until
unmapped, so after every slab (each progress report) :func:`release_pages`
unmaps them (``MADV_DONTNEED``: on a shared file mapping the data stays in
the file and the page cache, which the kernel can write back and drop).
"""

from __future__ import annotations

import contextlib
import gzip
import mmap
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple, Union

import numpy as np

from .atomic import TMP_PREFIX, atomic_path
from .errors import OperationCancelled, VolumeWriteError
from .progress import CancelCheck, ProgressArg, resolve_progress
from .volume import Volume
from .window import HUWindow

PathLike = Union[str, os.PathLike]
NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: slices per chunk when the difference volume is filled from input and output
DIFFERENCE_SLICES = 16
#: gzip level of streamed .nii.gz files; ITK's NIfTI writer defaults to 4 as well
GZIP_LEVEL = 4
_LPS_AXIS = {"L": (0, 1), "R": (0, -1), "P": (1, 1), "A": (1, -1), "S": (2, 1), "I": (2, -1)}


@dataclass
class FileReconstructionResult:
    """What :func:`reconstruct_to_file` returns: where it wrote, and the run's numbers.

    ``metrics`` and ``settings`` are those of :class:`ReconstructionResult`
    (same keys); the volumes themselves are only in the files.
    """

    output: Path
    difference: Optional[Path]
    metrics: Dict[str, float] = field(default_factory=dict)
    settings: Dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    shape: Tuple[int, int, int] = (0, 0, 0)


@contextlib.contextmanager
def scratch_array(beside: PathLike, shape: Sequence[int], dtype=np.float32) -> Iterator[np.memmap]:
    """A zero-filled disk-backed array in ``beside``'s folder, removed when the block ends (also on error).

    The space is reserved up front where the file system allows it, so a
    full disk is a :class:`VolumeWriteError` here rather than a SIGBUS when a
    page of the mapping is first written.
    """
    folder = Path(beside).parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=".npy", dir=folder)
    os.close(fd)
    array = None
    try:
        try:
            array = np.lib.format.open_memmap(name, mode="w+", dtype=np.dtype(dtype), shape=tuple(shape))
            _reserve(name)
        except OSError as exc:
            raise VolumeWriteError(f"{beside}: no room for the {_mb(shape, dtype)} MB scratch file in "
                                   f"{folder} ({exc.strerror or exc})") from None
        yield array
    finally:
        del array  # the caller's views must be gone too before Windows lets the file go
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)


def release_pages(array: np.ndarray) -> None:
    """Unmap the resident pages of an ``np.memmap`` (Linux); its contents stay in the file.

    A no-op for in-RAM arrays and elsewhere (macOS's MADV_DONTNEED is not
    documented to keep shared-mapping data).
    """
    mapping = getattr(array, "_mmap", None)
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if mapping is None or advice is None or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, ValueError):  # a closed mapping: nothing resident
        mapping.madvise(advice)


def _mb(shape: Sequence[int], dtype) -> int:
    return int(np.prod(shape)) * np.dtype(dtype).itemsize // 2**20


def _reserve(name: str) -> None:
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(name, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        import errno

        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):  # file systems without it
            raise
    finally:
        os.close(fd)


def oriented_view(volume: Volume, code: str) -> Optional[Volume]:
    """``volume`` re-ordered to orientation ``code`` as a numpy *view* (no copy), or None.

    The same permutation and flips as :meth:`Volume.reoriented`
    (``SimpleITK.DICOMOrient``), with the geometry moved along. None when
    the direction has no unambiguous dominant axis per index axis (a
    45-degree oblique), where the caller falls back to ``reoriented``.
    """
    if volume.orientation_code() == code:
        return volume
    if len(code) != 3 or any(c not in _LPS_AXIS for c in code):
        return None
    direction = volume.direction
    dominant = [int(np.argmax(np.abs(direction[:, i]))) for i in range(3)]
    if len(set(dominant)) != 3:
        return None
    old_axes, flips = [], []
    for letter in code:  # new ITK axis k -> the old ITK axis along the same patient axis
        lps, sign = _LPS_AXIS[letter]
        if lps not in dominant:
            return None
        i = dominant.index(lps)
        old_axes.append(i)
        flips.append(1 if np.sign(direction[lps, i]) == sign else -1)
    if sorted(old_axes) != [0, 1, 2]:
        return None
    size_xyz = tuple(reversed(volume.shape))
    spacing = np.asarray(volume.spacing)
    corner = np.zeros(3)
    for i, f in zip(old_axes, flips):
        corner[i] = size_xyz[i] - 1 if f < 0 else 0
    origin = np.asarray(volume.origin) + direction @ (spacing * corner)
    new_direction = np.stack([f * direction[:, i] for i, f in zip(old_axes, flips)], axis=1)
    # numpy axis j is ITK axis 2 - j, both before and after
    view = volume.array.transpose([2 - old_axes[2 - j] for j in range(3)])
    view = view[tuple(slice(None, None, -1) if flips[2 - j] < 0 else slice(None) for j in range(3))]
    return Volume(view, tuple(spacing[old_axes]), tuple(origin), new_direction, dict(volume.metadata))


def write_volume_streamed(volume: Volume, path: PathLike, *, protect: Tuple[PathLike, ...] = (),
                          cancel: Optional[CancelCheck] = None, progress: ProgressArg = None) -> Path:
    """Write a display-oriented ``volume`` (e.g. on a memmap) in its source orientation, atomically.

    NIfTI is written one slice at a time from the array (never a whole
    in-RAM copy); other formats go through :func:`engine.io.write_volume`
    (SimpleITK copies the whole volume). ``cancel()`` is checked between
    slices; a cancelled or failed write leaves no file and an existing
    ``path`` as it was. Raises :class:`VolumeWriteError` like ``write_volume``.
    """
    from .io import check_output_path, suffix_of, write_volume

    out = check_output_path(path, kind="volume", inputs=tuple(protect), overwrite=None)
    code = volume.metadata.get("source_orientation")
    source = oriented_view(volume, code) if code else volume
    if suffix_of(out) not in NIFTI_SUFFIXES or source is None:
        # SimpleITK's writers take a whole image: one full copy while writing.
        if cancel is not None and cancel():
            raise OperationCancelled("cancelled before writing the output")
        return write_volume(volume.to_source_orientation(), out, protect=tuple(protect))
    try:
        with atomic_path(out) as tmp:
            _write_nifti(source, tmp, cancel, resolve_progress(progress))
    except OSError as exc:
        raise VolumeWriteError(f"{out}: could not write ({exc.strerror or exc})") from None
    return out


def _write_nifti(volume: Volume, tmp: Path, cancel: Optional[CancelCheck], progress) -> None:
    """NIfTI-1 float32 header (qform and sform = the RAS affine, mm) then voxels slice by slice."""
    import nibabel as nib

    array = volume.array
    depth, height, width = array.shape
    header = nib.Nifti1Header(endianness="<")
    header.set_data_shape((width, height, depth))
    header.set_data_dtype(np.float32)
    affine = volume.affine_ras()
    header.set_qform(affine, code=1)  # scanner coordinates, as ITK writes
    header.set_sform(affine, code=1)
    header.set_xyzt_units("mm")
    header.set_slope_inter(1.0, 0.0)
    header["vox_offset"] = 352  # single file, no extensions: header + 4-byte extension flag
    opener = gzip.open(tmp, "wb", compresslevel=GZIP_LEVEL) if str(tmp).endswith(".gz") else open(tmp, "wb")
    unit = "slices (writing)"
    with opener as fh:
        header.write_to(fh)
        for z in range(depth):  # NIfTI stores x fastest, then y, then z: one [y, x] slice is one chunk
            fh.write(np.ascontiguousarray(array[z], dtype="<f4").tobytes())
            if z % 8 == 7 or z == depth - 1:
                if progress is not None:
                    progress(z + 1, depth, unit)
                if cancel is not None and cancel():
                    raise OperationCancelled(f"cancelled while writing, after {z + 1} of {depth} slices")


def fill_difference(source_hu: np.ndarray, recon_hu: np.ndarray, out: np.ndarray, window: HUWindow,
                    keep_outside_window: bool = False) -> np.ndarray:
    """:func:`engine.reconstruct.difference_hu` chunk by chunk into ``out`` (bounded working set)."""
    from .reconstruct import difference_hu

    for z0 in range(0, source_hu.shape[0], DIFFERENCE_SLICES):
        rows = slice(z0, z0 + DIFFERENCE_SLICES)
        out[rows] = difference_hu(source_hu[rows], recon_hu[rows], window, keep_outside_window)
        release_pages(out)
        release_pages(recon_hu)
    return out


def reconstruct_to_file(
    volume: Volume,
    output: PathLike,
    vae: Union[str, Any] = "taef2",
    window: HUWindow = HUWindow(),
    *,
    difference: Optional[PathLike] = None,
    protect: Tuple[PathLike, ...] = (),
    progress: ProgressArg = None,
    cancel: Optional[CancelCheck] = None,
    **options: Any,
) -> FileReconstructionResult:
    """:func:`engine.reconstruct.reconstruct_volume` of ``volume`` written to ``output`` (and ``difference``).

    ``volume`` is display-oriented (``read_volume(...).to_display()``); the
    files are written in its ``source_orientation`` with its geometry, as
    the in-RAM path writes ``result.volume.to_source_orientation()``.
    ``options`` are passed on (``device``, ``batch_size``, ``seed``,
    ``keep_outside_window``, ``compute_metrics``, ...). The output is
    reconstructed into a scratch memmap beside ``output`` (see module
    docstring). ``cancel()`` stops between slabs or written slices with
    :class:`OperationCancelled`: no output appears, an existing one is left
    as it was, and no scratch file remains.
    """
    from .reconstruct import reconstruct_volume

    report = resolve_progress(progress)
    output = Path(output)
    scratches: list = []

    def progress_and_release(done: int, total: int, unit: str) -> None:
        # Called once per slab while reconstructing, per metrics slab and per written chunk.
        for array in scratches:
            release_pages(array)
        if report is not None:
            report(done, total, unit)

    with scratch_array(output, volume.shape) as scratch:
        scratches.append(scratch)
        result = reconstruct_volume(volume, vae, window, out=scratch, progress=progress_and_release,
                                    cancel=cancel, **options)
        started = time.perf_counter()
        write_volume_streamed(result.volume, output, protect=protect, cancel=cancel, progress=progress_and_release)
        if difference is not None:
            with scratch_array(difference, volume.shape) as diff:
                scratches.append(diff)
                fill_difference(volume.array, scratch, diff, window, result.keep_outside_window)
                write_volume_streamed(result.volume.with_array(diff), difference, protect=protect,
                                      cancel=cancel, progress=progress_and_release)
                del diff
        scratches.clear()
        settings = dict(result.settings)
        settings["timing_s"] = {**settings.get("timing_s", {}), "write": round(time.perf_counter() - started, 3)}
        done = FileReconstructionResult(output, Path(difference) if difference is not None else None,
                                        result.metrics, settings, result.seconds, tuple(volume.shape))
        del result, scratch  # no view of the scratch file outlives it
    return done
