"""Shared fixtures: where the real sample CTs live, and small helpers.

Keep this file small and generic; area-specific fixtures belong in the
area's own test module.
"""

from __future__ import annotations

import locale
import os
from pathlib import Path

import pytest

# Tests run on small CPU machines next to other work: one thread each.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# No session can reach a model hub: fail fast instead of retrying the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DATA = REPO / "sample_data"


_START_LOCALE = locale.setlocale(locale.LC_ALL)


def _restore_start_locale() -> None:
    if locale.setlocale(locale.LC_ALL) != _START_LOCALE:
        locale.setlocale(locale.LC_ALL, _START_LOCALE)


@pytest.fixture(autouse=True)
def _process_locale_restored():
    """GDCM's DICOM writer (used by fixtures that build series, some of them
    module- or session-scoped) sets the C locale, which would make every later
    ``read_text()`` or text-mode subprocess in this process ASCII-only: each
    test starts and ends with the locale the session started with."""
    _restore_start_locale()
    yield
    _restore_start_locale()


@pytest.fixture(scope="session")
def sample_data_dir() -> Path:
    if not (SAMPLE_DATA / "ct_abdomen_3mm").is_dir():
        pytest.skip(f"sample data missing at {SAMPLE_DATA}")
    return SAMPLE_DATA


@pytest.fixture(scope="session")
def nifti_ct(sample_data_dir) -> Path:
    """Abdominal CT, 122 x 101 x 30 (x, y, z) at 3 mm, NIfTI, RAS affine."""
    return sample_data_dir / "ct_abdomen_3mm" / "ct.nii.gz"


@pytest.fixture(scope="session")
def nifti_organs(sample_data_dir) -> Path:
    """TotalSegmentator v2 organ labels of ``nifti_ct``."""
    return sample_data_dir / "ct_abdomen_3mm" / "organs.nii.gz"


@pytest.fixture(scope="session")
def dicom_dir(sample_data_dir) -> Path:
    """20-slice 512 x 512 DICOM series folder."""
    return sample_data_dir / "ct_dicom_series" / "dicom"


@pytest.fixture(scope="session")
def dicom_organs(sample_data_dir) -> Path:
    """Organ labels of the DICOM series (NIfTI, stored LAS)."""
    return sample_data_dir / "ct_dicom_series" / "organs.nii.gz"
