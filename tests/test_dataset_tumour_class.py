"""``data index --tumour-class``: binary tumour masks remapped to a lesion class beside the manifest."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from napari_ctfoundation.cli import main as cli
from napari_ctfoundation.engine.dataset import index_dataset
from napari_ctfoundation.engine.errors import ConfigError
from napari_ctfoundation.engine.io import read_labels, read_volume

SHAPE = (5, 12, 14)  # z, y, x
SPACING = (0.8, 0.9, 2.5)  # x, y, z
ORIGIN = (-10.0, 20.0, 5.0)
# an oblique direction, so a writer that dropped or reset it would be caught
C, S = np.cos(0.3), np.sin(0.3)
DIRECTION = (C, -S, 0.0, S, C, 0.0, 0.0, 0.0, 1.0)


def write_image(path: Path, array: np.ndarray) -> Path:
    import SimpleITK as sitk

    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(DIRECTION)
    sitk.WriteImage(image, str(path))
    return path


def tumour_array(value: int = 1) -> np.ndarray:
    m = np.zeros(SHAPE, np.uint8)
    m[1:3, 4:8, 5:9] = value
    return m


@pytest.fixture()
def corpus(tmp_path):
    root = tmp_path / "corpus"
    rng = np.random.default_rng(0)
    for case in ("p1", "p2"):
        write_image(root / case / "ct.nii.gz", rng.integers(-1000, 400, SHAPE).astype(np.int16))
        (root / case / "report.txt").write_text("Lung tumour in the right upper lobe.\n")
    write_image(root / "p1" / "tumour.nii.gz", tumour_array(1))
    tumor = tumour_array(1)
    tumor[4, 0, 0] = 2  # a second nonzero value: mapped to the class as well
    write_image(root / "p2" / "tumor.nii.gz", tumor)
    # lesions.nii.gz already holds lesion ids: never touched
    write_image(root / "p3" / "ct.nii.gz", rng.integers(-1000, 400, SHAPE).astype(np.int16))
    write_image(root / "p3" / "lesions.nii.gz", tumour_array(4))
    return root


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")}


def test_binary_tumour_masks_become_the_lesion_class(corpus, tmp_path):
    before = tree(corpus)
    out = tmp_path / "out" / "manifest.csv"
    result = index_dataset([corpus], out, tumour_class="nodules_masses")
    assert tree(corpus) == before  # nothing written into the dataset
    by_case = {c.case: c for c in result.cases}
    assert sorted(by_case) == ["p1", "p2", "p3"] and not result.skipped
    for case in ("p1", "p2"):
        mask_path = by_case[case].disease_mask
        assert mask_path == (tmp_path / "out" / "masks" / f"{case}_lesions.nii.gz").absolute()
        mask, ct = read_labels(mask_path), read_volume(corpus / case / "ct.nii.gz")
        expected = tumour_array(10)
        if case == "p2":
            expected[4, 0, 0] = 10
        assert np.array_equal(mask.array, expected)  # 10 where the tumour was, 0 elsewhere
        assert mask.same_grid(ct)  # spacing / origin / direction of the source kept
        assert np.allclose(mask.spacing, SPACING) and np.allclose(mask.origin, ORIGIN)
    assert by_case["p3"].disease_mask == corpus / "p3" / "lesions.nii.gz"  # lesion ids as they are
    with open(out, newline="") as fh:
        rows = {r["case"]: r for r in csv.DictReader(fh)}
    assert rows["p1"]["disease_mask"] == "masks/p1_lesions.nii.gz"
    assert rows["p3"]["disease_mask"] == "../corpus/p3/lesions.nii.gz"
    assert rows["p1"]["organ_mask"] == ""
    notes = "\n".join(result.notes)
    assert "lesion 10 = nodules_masses" in notes and "p2 [1, 2]" in notes
    assert "atelectasis_consolidation" not in notes  # the warning is for runs without the option


def test_without_the_option_the_ids_are_kept_with_a_warning(corpus, tmp_path):
    result = index_dataset([corpus], tmp_path / "m.csv")
    by_case = {c.case: c for c in result.cases}
    assert by_case["p1"].disease_mask == corpus / "p1" / "tumour.nii.gz"
    assert not (tmp_path / "masks").exists()
    assert any("atelectasis_consolidation" in n and "--tumour-class" in n for n in result.notes)


def test_unknown_class_is_one_clear_line(corpus, tmp_path, capsys):
    with pytest.raises(ConfigError, match="unknown lesion class 'tumour'.*nodules_masses") as info:
        index_dataset([corpus], tmp_path / "m.csv", tumour_class="tumour")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "m.csv").exists() and not (tmp_path / "masks").exists()
    assert cli(["data", "index", str(corpus), "--out", str(tmp_path / "m.csv"), "--tumour-class", "cancer"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown lesion class 'cancer'" in err[0] and "septal_thickening" in err[0]


def test_cli_flag_writes_the_remapped_mask(corpus, tmp_path, capsys):
    out = tmp_path / "o" / "m.csv"
    # names are matched like the label tables: case and spaces do not matter
    assert cli(["data", "index", str(corpus), "--out", str(out), "--tumor-class", "Nodules Masses"]) == 0
    assert "lesion 10 = nodules_masses" in capsys.readouterr().out
    assert set(np.unique(read_labels(tmp_path / "o" / "masks" / "p1_lesions.nii.gz").array)) == {0, 10}
