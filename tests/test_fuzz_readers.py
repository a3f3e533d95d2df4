"""Seeded fuzzing (hypothesis) of every reader: a damaged file is read, or refused with one clear line.

The mutations (header fields, sizes claiming huge images, byte flips, truncation, DICOM tag removal
and inconsistent slices) live in ``bench/fuzz.py``, whose longer run reports counts. Here hypothesis
draws them, derandomized so CI sees the same cases every time.
"""

from __future__ import annotations

import gzip
import importlib.util
import itertools
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("ctf_bench_fuzz", ROOT / "bench" / "fuzz.py")
fuzz = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = fuzz  # dataclasses look their module up there
_spec.loader.exec_module(fuzz)

SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
_counter = itertools.count()


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    return root, fuzz.write_samples(root / "samples")


def _check(samples, fmt: str, kind: str, seed: int) -> None:
    root, files = samples
    work = root / f"case{next(_counter)}"
    try:
        path, how = fuzz.make_case(files, fmt, kind, seed, work)
        outcome = fuzz.run_case(path, how)
        problem = fuzz.judge(outcome, path, how)
        assert problem is None, f"{fmt}/{kind} seed {seed}: {problem}\n{outcome.stderr[:4]}"
    finally:
        shutil.rmtree(work, ignore_errors=True)


@settings(max_examples=120, **SETTINGS)
@given(fmt=st.sampled_from(["nii", "nii.gz", "nrrd", "mha", "mhd", "labels"]),
       kind=st.sampled_from(["field", "size", "flip", "truncate"]), seed=st.integers(0, 2**32 - 1))
def test_damaged_image_files_are_read_or_refused_in_one_line(samples, fmt, kind, seed):
    _check(samples, fmt, kind, seed)


@settings(max_examples=30, **SETTINGS)
@given(kind=st.sampled_from(fuzz.MUTATIONS), seed=st.integers(0, 2**32 - 1))
def test_damaged_dicom_series_are_read_or_refused_in_one_line(samples, kind, seed):
    _check(samples, "dicom", kind, seed)


@settings(max_examples=50, **SETTINGS)
@given(fmt=st.sampled_from(list(fuzz.OTHER_FORMATS)), kind=st.sampled_from(["field", "size", "flip", "truncate"]),
       seed=st.integers(0, 2**32 - 1))
def test_damaged_manifests_configs_latents_checkpoints_never_escape(samples, fmt, kind, seed):
    _check(samples, fmt, kind, seed)


# ------------------------------------------------------- the cases
def _cli(args, capfd):
    from napari_ctfoundation.cli import main

    rc = main(args)
    out, err = capfd.readouterr()
    return rc, [l for l in err.splitlines() if l.strip()]


def test_truncated_nifti_is_refused_not_zero_padded(samples, capfd, tmp_path):
    _, files = samples
    data = files["nii"].read_bytes()
    bad = tmp_path / "cut.nii"
    bad.write_bytes(data[: 352 + (len(data) - 352) // 2])
    rc, err = _cli(["info", str(bad)], capfd)
    assert rc == 2 and len(err) == 1 and "truncated" in err[0] and "bytes of voxel data" in err[0]


def test_damaged_mha_has_our_reason_and_no_itk_chatter(samples, capfd, tmp_path):
    _, files = samples
    bad = tmp_path / "bad.mha"
    bad.write_bytes(files["mha"].read_bytes().replace(b"DimSize", b"DimSizX"))
    rc, err = _cli(["info", str(bad)], capfd)
    assert rc == 2 and len(err) == 1, err
    assert "No such file or directory" not in err[0] and "DimSize" in err[0]


@pytest.mark.parametrize("fmt", ["nii", "mha", "nrrd", "nii.gz"])
def test_small_file_claiming_a_huge_image_is_refused_before_allocating(samples, capfd, tmp_path, fmt):
    _, files = samples
    data = files["nii" if fmt == "nii.gz" else fmt].read_bytes()
    if fmt.startswith("nii"):
        buf = bytearray(data)
        buf[42:48] = struct.pack("<3h", 30000, 30000, 30000)
        data = bytes(buf)
    elif fmt == "mha":
        data = data.replace(b"DimSize = 16 12 6", b"DimSize = 90000 90000 90000")
    else:
        data = data.replace(b"sizes: 16 12 6", b"sizes: 90000 90000 90000")
    bad = tmp_path / f"huge.{fmt}"
    bad.write_bytes(gzip.compress(data) if fmt == "nii.gz" else data)
    rc, err = _cli(["info", str(bad)], capfd)
    assert rc == 2 and len(err) == 1, err
    assert "more than the" in err[0] and "memory available" in err[0]


def test_memory_guard_uses_available_memory_so_a_real_large_ct_reads(monkeypatch, tmp_path):
    from napari_ctfoundation.engine import read_guard
    from napari_ctfoundation.engine.errors import VolumeReadError

    monkeypatch.setattr(read_guard, "available_memory", lambda: 16 * 10**9)
    read_guard.check_size(tmp_path / "ct.nii.gz", (512, 512, 1000), 2)  # 2.1 GB to read: fine
    monkeypatch.setattr(read_guard, "available_memory", lambda: 1 * 10**9)
    with pytest.raises(VolumeReadError, match="512 x 512 x 1000 image"):
        read_guard.check_size(tmp_path / "ct.nii.gz", (512, 512, 1000), 2)


def test_dicom_slice_of_another_size_is_named(samples, capfd, tmp_path):
    _, files = samples
    folder = tmp_path / "dicom"
    shutil.copytree(files["dicom"], folder)
    fuzz.mutate_dicom(folder, "size", np.random.default_rng(3))
    rc, err = _cli(["info", str(folder)], capfd)
    assert rc == 2 and len(err) == 1, err
    assert "pixels" in err[0] or "not a readable" in err[0] or "unreadable" in err[0]
