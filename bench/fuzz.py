"""Seeded fuzzing of every reader path; prints how many damaged inputs were read, refused cleanly, or failed.

A case is a small, valid sample file (NIfTI, NIfTI.gz, NRRD, MHA, MHD+raw,
DICOM series, label map, manifest, DiCE checkpoint config, latent file,
training checkpoint) damaged by one seeded mutation: header-field values
(including sizes that claim a huge image), random byte flips, truncation,
and for DICOM tag removal or inconsistent tags across slices. The reader
must then either read it (exit 0) or refuse it with one ``error:`` line
(exit 2): no traceback, no native-library chatter on stderr, and never
"No such file or directory" for a file that exists.

    python bench/fuzz.py --cases 2000 --seed 0      # counts per format and mutation
    python bench/fuzz.py --formats mha,dicom -v     # print every failure

``tests/test_fuzz_readers.py`` drives the same mutations with hypothesis.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import re
import shutil
import struct
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

IMAGE_FORMATS = ("nii", "nii.gz", "nrrd", "mha", "mhd", "dicom", "labels")
OTHER_FORMATS = ("manifest", "dice-config", "latents", "checkpoint")
FORMATS = IMAGE_FORMATS + OTHER_FORMATS
MUTATIONS = ("field", "size", "flip", "truncate", "tag-remove", "tag-inconsistent")
SHAPE_ZYX = (6, 12, 16)
HOSTILE = ["0", "-1", "-7", "1", "2", "65535", "99999", "2147483647", "4294967296", "1e9", "1e30", "nan",
           "inf", "-inf", "", "abc", "3 3", "1 2 3 4 5", "0.0", "\x00", "é"]


@dataclass
class Outcome:
    rc: int  # 0 read, 2 refused, -1 an exception escaped
    stderr: List[str]
    error: str = ""


# ------------------------------------------------------------- samples
def write_samples(folder: Path) -> Dict[str, Path]:
    """One small valid sample per format under ``folder`` (created once, then copied per case)."""
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ct = rng.integers(-1000, 1500, SHAPE_ZYX).astype(np.int16)
    img = sitk.GetImageFromArray(ct)
    img.SetSpacing((0.8, 0.8, 2.5))
    img.SetOrigin((-10.0, 20.0, 30.0))
    out: Dict[str, Path] = {}
    for fmt in ("nii", "nii.gz", "nrrd", "mha", "mhd"):
        out[fmt] = folder / f"ct.{fmt}"
        sitk.WriteImage(img, str(out[fmt]), useCompression=False)
    labels = sitk.GetImageFromArray((np.abs(ct) % 5).astype(np.uint8))
    labels.CopyInformation(img)
    out["labels"] = folder / "labels.nii.gz"
    sitk.WriteImage(labels, str(out["labels"]))
    out["dicom"] = _write_dicom(img, folder / "dicom")
    out["manifest"] = folder / "manifest.csv"
    out["manifest"].write_text("image,organ_mask,report\nct.nii.gz,labels.nii.gz,report.txt\n")
    sitk.WriteImage(img, str(folder / "ct.nii.gz"))
    (folder / "report.txt").write_text("Liver normal. No pleural effusion.\n")
    out["dice-config"] = _write_dice(folder / "dice")
    out["latents"] = _write_latents(folder / "latents.safetensors")
    out["checkpoint"] = _write_checkpoint(folder / "run")
    return out


def _write_dicom(img, folder: Path) -> Path:
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    uid = "1.2.826.0.1.3680043.2.1125.1"
    for k in range(img.GetSize()[2]):
        s = img[:, :, k]
        pos = img.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in (("0008|0060", "CT"), ("0020|000d", uid + ".1"), ("0020|000e", uid + ".2"),
                           ("0008|0018", f"{uid}.3.{k}"), ("0020|0013", str(k + 1)),
                           ("0020|0032", "\\".join(f"{v:g}" for v in pos)),
                           ("0020|0037", "1\\0\\0\\0\\1\\0"), ("0018|0050", "2.5"),
                           ("0028|1052", "0"), ("0028|1053", "1")):
            s.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(s)
    return folder


def _write_dice(folder: Path) -> Path:
    from dataclasses import replace

    from napari_ctfoundation.engine.sparse.dice.checkpoint import save_dice
    from napari_ctfoundation.engine.sparse.dice.config import DiCEConfig
    from napari_ctfoundation.engine.sparse.dice.model import DiCE
    from napari_ctfoundation.engine.sparse.geometry import PRESETS

    geo = replace(PRESETS["deepsparse"].scaled(16, name="fuzz-16"), n_candidates=12)
    save_dice(DiCE(DiCEConfig.tiny(geo)), folder)
    return folder


def _write_latents(path: Path) -> Path:
    from napari_ctfoundation.engine.latents import LatentVolume, save_latents
    from napari_ctfoundation.engine.window import HUWindow

    lv = LatentVolume(latents=np.zeros((1, 4, 6, 2, 2), np.float32), window_starts=[0], window_slices=6,
                      vae={"spec": "taef2"}, hu_window=HUWindow(), geometry={}, padded_hw=(16, 16),
                      shape_zyx=SHAPE_ZYX)
    return save_latents(lv, path)


def _write_checkpoint(run: Path) -> Path:
    import torch

    from napari_ctfoundation.engine.checkpointing import save_checkpoint

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    for step in (1, 2):
        save_checkpoint(run, step, {"model": model.state_dict(), "step": step},
                        files={"loss_log.csv": b"step,loss\n1,0.5\n"})
    return run


# ----------------------------------------------------------- mutations
def _text_field(data: bytes, rng: np.random.Generator, sep: bytes) -> bytes:
    """Replace the value of one ``key SEP value`` header line by a hostile one, or drop the line."""
    head_end = _text_header_end(data)
    lines = data[:head_end].split(b"\n")
    idx = [i for i, l in enumerate(lines) if sep in l]
    if not idx:
        return data
    i = int(rng.choice(idx))
    key = lines[i].split(sep, 1)[0]
    if rng.random() < 0.2:
        lines.pop(i)
    else:
        lines[i] = key + sep + HOSTILE[int(rng.integers(len(HOSTILE)))].encode("utf-8")
    return b"\n".join(lines) + data[head_end:]


def _text_header_end(data: bytes) -> int:
    for marker in (b"ElementDataFile = LOCAL\n", b"\n\n"):
        at = data.find(marker)
        if at >= 0:
            return at + (len(marker) - 1 if marker.startswith(b"Element") else 1)
    return min(len(data), 1024)


def _text_size(data: bytes, rng: np.random.Generator, fmt: str) -> bytes:
    dims = " ".join(str(int(v)) for v in rng.choice([1, 2, 16, 512, 4096, 65535, 10 ** 6, 2 ** 31 - 1], 3))
    if fmt == "nrrd":
        return re.sub(rb"sizes: [^\n]*", b"sizes: " + dims.encode(), data, count=1)
    return re.sub(rb"DimSize = [^\n]*", b"DimSize = " + dims.encode(), data, count=1)


NIFTI_FIELDS = {  # offset, struct format, count
    "sizeof_hdr": (0, "<i", 1), "dim": (40, "<h", 8), "datatype": (70, "<h", 1), "bitpix": (72, "<h", 1),
    "pixdim": (76, "<f", 8), "vox_offset": (108, "<f", 1), "scl_slope": (112, "<f", 1),
    "scl_inter": (116, "<f", 1), "qform_code": (252, "<h", 1), "sform_code": (254, "<h", 1),
    "quatern": (256, "<f", 6), "srow": (280, "<f", 12), "magic": (344, "4s", 1),
}


def _nifti_field(data: bytes, rng: np.random.Generator, size_only: bool = False) -> bytes:
    buf = bytearray(data)
    name = "dim" if size_only else str(rng.choice(sorted(NIFTI_FIELDS)))
    off, fmt, count = NIFTI_FIELDS[name]
    width = struct.calcsize(fmt)
    k = int(rng.integers(count))
    if fmt == "4s":
        value = struct.pack(fmt, bytes(rng.integers(0, 256, 4).astype(np.uint8)))
    elif fmt == "<h":
        pool = [0, -1, 1, 3, 4, 7, 8, 16, 255, 512, 4096, 32767, -32768]
        if size_only:
            k = int(rng.integers(1, 4))
            pool = [512, 4096, 32767]
        value = struct.pack(fmt, int(rng.choice(pool)))
    elif fmt == "<i":
        value = struct.pack(fmt, int(rng.choice([0, -1, 348, 540, 2 ** 31 - 1])))
    else:
        value = struct.pack(fmt, float(rng.choice([0.0, -1.0, 1e-30, 1e30, np.nan, np.inf, 352.0, 3.5])))
    buf[off + k * width: off + (k + 1) * width] = value
    return bytes(buf)


def _flip(data: bytes, rng: np.random.Generator, head: int) -> bytes:
    buf = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        buf[int(rng.integers(min(head, len(buf))))] = int(rng.integers(256))
    return bytes(buf)


def _truncate(data: bytes, rng: np.random.Generator) -> bytes:
    return data[: int(rng.integers(1, max(2, len(data))))]


def mutate_bytes(fmt: str, kind: str, data: bytes, rng: np.random.Generator) -> bytes:
    """One mutation of a single-file format's bytes (``fmt`` without .gz)."""
    if kind == "truncate":
        return _truncate(data, rng)
    binary_head = 352 if fmt == "nii" else _text_header_end(data)
    if kind == "flip":
        return _flip(data, rng, binary_head if rng.random() < 0.8 else len(data))
    if fmt == "nii":
        return _nifti_field(data, rng, size_only=kind == "size")
    if kind == "size":
        return _text_size(data, rng, fmt)
    return _text_field(data, rng, b": " if fmt == "nrrd" else b" = ")


# ------------------------------------------------------------- DICOM
def _element_span(data: bytes, at: int) -> Tuple[int, int]:
    """(start, end) of the data element whose tag starts at ``at`` (explicit or implicit VR LE)."""
    vr = data[at + 4: at + 6]
    if vr.isalpha() and vr.isupper():
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"OD", b"OL", b"UC", b"UR"):
            length = struct.unpack("<I", data[at + 8: at + 12])[0]
            return at, at + 12 + (0 if length == 0xFFFFFFFF else length)
        return at, at + 8 + struct.unpack("<H", data[at + 6: at + 8])[0]
    return at, at + 8 + struct.unpack("<I", data[at + 4: at + 8])[0]


DICOM_TAGS = {"rows": (0x0028, 0x0010), "columns": (0x0028, 0x0011), "bits_allocated": (0x0028, 0x0100),
              "position": (0x0020, 0x0032), "orientation": (0x0020, 0x0037), "series_uid": (0x0020, 0x000E),
              "spacing": (0x0028, 0x0030), "pixel_data": (0x7FE0, 0x0010), "slope": (0x0028, 0x1053),
              "pixel_repr": (0x0028, 0x0103), "samples": (0x0028, 0x0002)}


def _find_tag(data: bytes, tag: Tuple[int, int]) -> int:
    return data.find(struct.pack("<HH", *tag), 132)


def mutate_dicom(folder: Path, kind: str, rng: np.random.Generator) -> None:
    files = sorted(folder.glob("*.dcm"))
    target = files[int(rng.integers(len(files)))]
    data = target.read_bytes()
    if kind == "truncate":
        target.write_bytes(_truncate(data, rng))
    elif kind == "flip":
        target.write_bytes(_flip(data, rng, len(data) - SHAPE_ZYX[1] * SHAPE_ZYX[2] * 2))
    elif kind == "tag-remove":
        at = _find_tag(data, DICOM_TAGS[str(rng.choice(sorted(DICOM_TAGS)))])
        if at > 0:
            start, end = _element_span(data, at)
            target.write_bytes(data[:start] + data[end:])
        if rng.random() < 0.3:  # or a whole slice goes missing
            files[int(rng.integers(len(files)))].unlink(missing_ok=True)
    elif kind == "size":  # one slice claims another size, or the series claims a huge one
        buf = bytearray(data)
        for name in ("rows", "columns"):
            at = _find_tag(data, DICOM_TAGS[name])
            start, end = _element_span(data, at)
            buf[end - 2: end] = struct.pack("<H", int(rng.choice([1, 11, 13, 64, 4096, 65535])))
        target.write_bytes(bytes(buf))
    else:  # field / tag-inconsistent: one slice disagrees with the others
        name = str(rng.choice(["position", "series_uid", "bits_allocated", "rows", "orientation", "slope",
                               "pixel_repr", "samples", "spacing"]))
        at = _find_tag(data, DICOM_TAGS[name])
        if at < 0:
            return
        start, end = _element_span(data, at)
        head = 8 if end - start - 8 == struct.unpack("<H", data[at + 6: at + 8])[0] else 12
        value = data[start + head: end]
        if name in ("rows", "bits_allocated", "pixel_repr", "samples"):
            new = struct.pack("<H", int(rng.choice([0, 1, 3, 8, 12, 32, 65535])))
        elif name == "position" and len(files) > 1:
            other = files[0] if target != files[0] else files[1]
            o = other.read_bytes()
            s2, e2 = _element_span(o, _find_tag(o, DICOM_TAGS[name]))
            new = o[s2 + head: e2]  # a duplicate slice position
        else:
            token = HOSTILE[int(rng.integers(len(HOSTILE)))].encode("utf-8")
            new = (token + b" ")[: max(2, len(token) + len(token) % 2)]
        new = new + b" " * (len(new) % 2)
        length = struct.pack("<H", len(new)) if head == 8 else struct.pack("<I", len(new))
        header = data[start: start + head - len(length)] + length
        target.write_bytes(data[:start] + header + new + data[end:])
        del value


# -------------------------------------------------------------- cases
def make_case(samples: Dict[str, Path], fmt: str, kind: str, seed: int, work: Path) -> Tuple[Path, str]:
    """Copy the ``fmt`` sample into ``work`` and damage it; returns (path to read, how it is read)."""
    rng = np.random.default_rng([seed, FORMATS.index(fmt), MUTATIONS.index(kind)])
    work.mkdir(parents=True, exist_ok=True)
    src = samples[fmt]
    if fmt == "dicom":
        dst = work / "dicom"
        shutil.copytree(src, dst)
        mutate_dicom(dst, kind, rng)
        return dst, "volume"
    if fmt in ("nii.gz", "labels"):
        raw = gzip.decompress(src.read_bytes())
        if kind == "flip" and rng.random() < 0.3:  # damage the compressed stream itself
            data = _flip(src.read_bytes(), rng, len(src.read_bytes()))
        elif kind == "truncate" and rng.random() < 0.5:
            data = _truncate(src.read_bytes(), rng)
        else:
            data = gzip.compress(mutate_bytes("nii", kind, raw, rng), mtime=0)
        dst = work / src.name
        dst.write_bytes(data)
        return dst, "labels" if fmt == "labels" else "volume"
    if fmt == "mhd":
        shutil.copy(src.with_suffix(".raw"), work / "ct.raw")
        dst = work / "ct.mhd"
        if kind == "truncate" and rng.random() < 0.5:  # the detached voxel file is cut instead
            (work / "ct.raw").write_bytes(_truncate((work / "ct.raw").read_bytes(), rng))
            shutil.copy(src, dst)
        else:
            dst.write_bytes(mutate_bytes("mhd", kind, src.read_bytes(), rng))
        return dst, "volume"
    if fmt in ("nii", "nrrd", "mha"):
        dst = work / src.name
        dst.write_bytes(mutate_bytes(fmt, kind, src.read_bytes(), rng))
        return dst, "volume"
    if fmt == "manifest":
        for name in ("ct.nii.gz", "labels.nii.gz", "report.txt"):
            shutil.copy(src.parent / name, work / name)
        victim = str(rng.choice(["manifest.csv", "report.txt", "ct.nii.gz", "labels.nii.gz"]))
        data = (src if victim == "manifest.csv" else src.parent / victim).read_bytes()
        if victim.endswith(".nii.gz"):
            data = gzip.compress(mutate_bytes("nii", kind, gzip.decompress(data), rng), mtime=0)
        elif kind == "truncate":
            data = _truncate(data, rng)
        elif kind == "field" and victim == "manifest.csv":
            data = data.replace(b"image", HOSTILE[int(rng.integers(len(HOSTILE)))].encode(), 1)
        else:
            data = _flip(data, rng, len(data))
        (work / victim).write_bytes(data)
        if victim != "manifest.csv":
            shutil.copy(src, work / "manifest.csv")
        return work / "manifest.csv", "manifest"
    if fmt == "dice-config":
        dst = work / "dice"
        shutil.copytree(src, dst)
        victim = dst / ("model.safetensors" if kind in ("truncate", "size") and rng.random() < 0.5 else "config.json")
        data = victim.read_bytes()
        if kind == "truncate":
            data = _truncate(data, rng)
        elif kind in ("field", "size") and victim.suffix == ".json":
            data = _json_field(data, rng)
        else:
            data = _flip(data, rng, len(data) if victim.suffix == ".json" else 64)
        victim.write_bytes(data)
        return dst, "dice"
    if fmt == "latents":
        dst = work / src.name
        data = src.read_bytes()
        dst.write_bytes(_truncate(data, rng) if kind == "truncate" else _flip(data, rng, 256))
        return dst, "latents"
    if fmt == "checkpoint":
        dst = work / "run"
        shutil.copytree(src, dst)
        ckpts = sorted((dst / "checkpoints").iterdir())
        victim_dir = ckpts[int(rng.integers(len(ckpts)))]
        victim = victim_dir / str(rng.choice(["state.json", "tensors.safetensors", "loss_log.csv"]))
        data = victim.read_bytes()
        if kind == "truncate":
            data = _truncate(data, rng)
        elif kind == "field" and victim.suffix == ".json":
            data = _json_field(data, rng)
        else:
            data = _flip(data, rng, len(data))
        victim.write_bytes(data)
        return dst, "checkpoint"
    raise ValueError(fmt)


def _json_field(data: bytes, rng: np.random.Generator) -> bytes:
    """Give one JSON value (found by regex) a hostile value."""
    values = list(re.finditer(rb": (-?[0-9.eE+]+|\"[^\"]*\"|true|false|null)", data))
    if not values:
        return data
    m = values[int(rng.integers(len(values)))]
    new = rng.choice([b"-1", b"0", b"1e308", b"\"x\"", b"null", b"[]", b"{}", b"99999999", b"true"])
    return data[: m.start(1)] + bytes(new) + data[m.end(1):]


# ------------------------------------------------------------- running
@contextlib.contextmanager
def _fd_capture() -> Iterator[List[str]]:
    """Everything written to stderr meanwhile: by Python (sys.stderr) and by native code (fd 2)."""
    import io

    lines: List[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    py_err = io.StringIO()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            with contextlib.redirect_stderr(py_err), contextlib.redirect_stdout(io.StringIO()):
                yield lines
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            err.seek(0)
            text = py_err.getvalue() + err.read().decode("utf-8", "replace")
            lines.extend(l for l in text.splitlines() if l.strip())


def _reader(how: str) -> Callable[[Path], object]:
    def volume(p: Path):
        from napari_ctfoundation.cli import main

        return main(["info", str(p)])

    def labels(p: Path):
        from napari_ctfoundation.engine.io import read_labels

        read_labels(p)

    def manifest(p: Path):
        from napari_ctfoundation.engine.generation.manifest import read_manifest

        read_manifest(p)

    def dice(p: Path):
        from napari_ctfoundation.engine.sparse.dice.checkpoint import load_dice

        load_dice(p)

    def latents(p: Path):
        from napari_ctfoundation.engine.latents import load_latents

        load_latents(p)

    def checkpoint(p: Path):
        from napari_ctfoundation.engine.checkpointing import latest_checkpoint

        latest_checkpoint(p)

    return locals()[how]


def run_case(path: Path, how: str) -> Outcome:
    """Read ``path`` the way ``how`` says, as the CLI would: exit code and stderr lines."""
    import warnings

    from napari_ctfoundation.engine.errors import CTFoundationError

    rc, error = 0, ""
    with _fd_capture() as lines, warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda msg, *a, **k: print(f"warning: {msg}", file=sys.stderr)
        try:
            rc = int(_reader(how)(path) or 0)
        except CTFoundationError as exc:
            print(f"error: {exc}", file=sys.stderr)
            rc = 2
        except Exception as exc:  # what the fuzzing is looking for
            rc, error = -1, f"{type(exc).__name__}: {str(exc)[:200]}"
    return Outcome(rc, lines, error)


def judge(outcome: Outcome, path: Path, how: str) -> Optional[str]:
    """None when the outcome is acceptable, else what is wrong."""
    if outcome.rc == -1:
        return f"escaped exception {outcome.error}"
    errors = [l for l in outcome.stderr if l.startswith("error:")]
    other = [l for l in outcome.stderr if not l.startswith(("error:", "warning:", "  "))]
    if other:
        return f"stderr chatter: {other[0][:160]!r}"
    if outcome.rc == 2:
        if len(errors) != 1:
            return f"{len(errors)} error lines"
        if how != "manifest" and len(outcome.stderr) - len([l for l in outcome.stderr if l.startswith("warning:")]) != 1:
            return "multi-line error"
        if "No such file or directory" in errors[0] and path.exists():
            return f"wrong reason: {errors[0][:160]}"
    elif outcome.rc != 0:
        return f"exit code {outcome.rc}"
    return None


def fuzz(n_cases: int, seed: int, formats=FORMATS, verbose: bool = False, work: Optional[Path] = None):
    root = Path(work or tempfile.mkdtemp(prefix="ctf-fuzz-"))
    samples = write_samples(root / "samples")
    counts: Dict[Tuple[str, str], Counter] = defaultdict(Counter)
    failures: List[str] = []
    t0 = time.perf_counter()
    for i in range(n_cases):
        fmt = formats[i % len(formats)]
        kinds = MUTATIONS if fmt == "dicom" else tuple(k for k in MUTATIONS if not k.startswith("tag"))
        kind = kinds[(i // len(formats)) % len(kinds)]
        case_dir = root / f"case{i:05d}"
        path, how = make_case(samples, fmt, kind, seed + i, case_dir)
        outcome = run_case(path, how)
        problem = judge(outcome, path, how)
        verdict = "failed" if problem else ("read" if outcome.rc == 0 else "refused")
        counts[(fmt, kind)][verdict] += 1
        if problem:
            failures.append(f"{fmt}/{kind} seed {seed + i}: {problem}")
            if verbose:
                print(failures[-1], file=sys.stderr)
        shutil.rmtree(case_dir, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    return counts, failures, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    formats = tuple(f for f in args.formats.split(",") if f)
    counts, failures, seconds = fuzz(args.cases, args.seed, formats, args.verbose)
    print(f"{'format':<12}{'mutation':<18}{'cases':>6}{'read':>6}{'refused':>9}{'failed':>8}")
    total = Counter()
    for (fmt, kind), c in sorted(counts.items()):
        n = sum(c.values())
        total.update(c)
        print(f"{fmt:<12}{kind:<18}{n:>6}{c['read']:>6}{c['refused']:>9}{c['failed']:>8}")
    print(f"{'all':<30}{sum(total.values()):>6}{total['read']:>6}{total['refused']:>9}{total['failed']:>8}"
          f"   ({seconds:.0f} s, seed {args.seed})")
    for line in failures[:30]:
        print("FAILED", line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
