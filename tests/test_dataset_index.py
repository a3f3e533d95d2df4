"""Dataset indexing: every layout built from small synthetic volumes; the manifest in the dataset commands."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from napari_ctfoundation.cli import main as cli
from napari_ctfoundation.engine import labels
from napari_ctfoundation.engine.dataset import (MANIFEST_COLUMNS, detect_layout, index_dataset,
                                                read_dataset_manifest, write_manifest)
from napari_ctfoundation.engine.errors import ConfigError
from napari_ctfoundation.engine.io import read_labels

SHAPE = (5, 12, 14)  # z, y, x
SPACING = (1.5, 1.5, 3.0)  # x, y, z


def write_image(path: Path, array: np.ndarray, spacing=SPACING) -> Path:
    import SimpleITK as sitk

    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


def ct_array(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    arr = np.full(SHAPE, -1000, np.int16)
    arr[:, 3:9, 3:11] = rng.integers(-100, 200, (SHAPE[0], 6, 8))
    return arr


def block_mask(value: int, z=(0, 5), y=(3, 9), x=(3, 11), shape=SHAPE) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    m[z[0]:z[1], y[0]:y[1], x[0]:x[1]] = value
    return m


def write_dicom_series(folder: Path, modality: str = "CT", n: int = 3, series_uid: str = "1.2.826.0.1.1") -> Path:
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(n):
        image = sitk.GetImageFromArray(ct_array(k)[0:1].astype(np.int16))[:, :, 0]
        for tag, value in (("0008|0060", modality), ("0020|000d", "1.2.826.0.1.9"), ("0020|000e", series_uid),
                           ("0008|0018", f"{series_uid}.{k + 1}"), ("0020|0013", str(k + 1)),
                           ("0020|0032", f"0\\0\\{3.0 * k}"), ("0020|0037", "1\\0\\0\\0\\1\\0"),
                           ("0028|0030", "1.5\\1.5"), ("0018|0050", "3.0")):
            image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(image)
    return folder


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


# ----------------------------------------------------------------- case-folders
@pytest.fixture()
def case_folders(tmp_path):
    root = tmp_path / "corpus"
    write_image(root / "a" / "ct.nii.gz", ct_array(1))
    write_image(root / "a" / "organs.nii.gz", block_mask(5))
    write_image(root / "a" / "tumour.nii.gz", block_mask(1, z=(1, 3)))
    (root / "a" / "report.txt").write_text("Liver present. A small lesion.\n")
    write_dicom_series(root / "b" / "dicom")
    write_image(root / "broken" / "ct.nii.gz", ct_array(2))
    write_image(root / "broken" / "organs.nii.gz", block_mask(5, shape=(4, 12, 14)))  # off-grid mask
    (root / "licenses").mkdir()
    (root / "licenses" / "LICENSE.txt").write_text("CC BY")
    return root


def test_case_folders_manifest_relative_paths_skips_and_root_untouched(case_folders, tmp_path):
    before = tree(case_folders)
    out = tmp_path / "work" / "manifest.csv"
    result = index_dataset([case_folders], out)
    assert tree(case_folders) == before
    assert detect_layout(case_folders).name == "case-folders"
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == MANIFEST_COLUMNS
    by_case = {r["case"]: r for r in rows}
    assert set(by_case) == {"a", "b"}
    a = by_case["a"]
    assert a["image"] == "../corpus/a/ct.nii.gz" and a["organ_mask"] == "../corpus/a/organs.nii.gz"
    assert a["disease_mask"] == "../corpus/a/tumour.nii.gz" and a["report"].startswith("Liver present")
    assert by_case["b"]["image"] == "../corpus/b/dicom" and by_case["b"]["organ_mask"] == ""
    assert {r["layout"] for r in rows} == {"case-folders"}
    reasons = {s.case: (s.reason, s.broken) for s in result.skipped}
    assert "label grid does not match" in reasons["broken"][0] and reasons["broken"][1]
    assert "no CT" in reasons["licenses"][0] and not reasons["licenses"][1]
    cases = read_dataset_manifest(out)
    assert cases[0].image.resolve() == (case_folders / "a" / "ct.nii.gz").resolve()


def test_strict_and_output_inside_root_are_errors(case_folders, tmp_path):
    with pytest.raises(ConfigError, match="broken.*label grid"):
        index_dataset([case_folders], tmp_path / "m.csv", strict=True)
    with pytest.raises(ConfigError, match="inside the dataset"):
        index_dataset([case_folders], case_folders / "m.csv")


def test_cli_index_summary_reports_and_strict(case_folders, tmp_path, capsys):
    reports = tmp_path / "reports.csv"
    with open(reports, "w", newline="") as fh:
        csv.writer(fh).writerows([["VolumeName", "Findings_EN"], ["b.nii.gz", "Normal upper abdomen."]])
    out = tmp_path / "m.csv"
    assert cli(["data", "index", str(case_folders), "--out", str(out), "--reports", str(reports)]) == 0
    text = capsys.readouterr().out
    assert "case-folders: 2" in text and "broken" in text and "licenses" in text
    assert {c.case: c.report for c in read_dataset_manifest(out)}["b"] == "Normal upper abdomen."
    assert cli(["data", "index", str(case_folders), "--out", str(out), "--strict"]) == 2
    errors = [l for l in capsys.readouterr().err.splitlines() if l.startswith("error")]
    assert len(errors) == 1 and errors[0].startswith("error: broken case(s): broken:")


# ------------------------------------------------------------- MSD / nnU-Net
def test_msd_labels_mapped_by_name_unmapped_reported(tmp_path):
    root = tmp_path / "Task03_Liver"
    labels_json = {"0": "background", "1": "liver", "2": "cancer", "3": "pleural effusion thickening"}
    (root / "imagesTr").mkdir(parents=True)
    write_image(root / "imagesTr" / "liver_0.nii.gz", ct_array())
    lab = block_mask(1)
    lab[2, 4:6, 4:6] = 2
    lab[0, 0, 0] = 3
    write_image(root / "labelsTr" / "liver_0.nii.gz", lab)
    write_image(root / "imagesTs" / "liver_9.nii.gz", ct_array(3))
    (root / "dataset.json").write_text(json.dumps({
        "name": "Liver", "modality": {"0": "CT"}, "labels": labels_json,
        "training": [{"image": "./imagesTr/liver_0.nii.gz", "label": "./labelsTr/liver_0.nii.gz"}],
        "test": ["./imagesTs/liver_9.nii.gz"]}))
    result = index_dataset([root], tmp_path / "out" / "m.csv")
    assert [c.case for c in result.cases] == ["liver_0", "liver_9"]
    assert {c.layout for c in result.cases} == {"msd"}
    case = result.cases[0]
    organs, lesions = read_labels(case.organ_mask).array, read_labels(case.disease_mask).array
    liver, effusion = labels.id_of("liver"), labels.id_of("pleural_effusion_thickening", "lesions")
    assert set(np.unique(organs)) == {0, liver} and organs[2, 4, 4] == 0  # 'cancer' voxels -> background
    assert set(np.unique(lesions)) == {0, effusion} and lesions[0, 0, 0] == effusion
    assert case.organ_mask.parent == tmp_path / "out" / "masks"
    assert any("'cancer'" in n and "unmapped" in n for n in result.notes)


def test_nnunet_v2_raw(tmp_path):
    root = tmp_path / "Dataset009_Spleen"
    write_image(root / "imagesTr" / "spl_1_0000.nii.gz", ct_array())
    write_image(root / "labelsTr" / "spl_1.nii.gz", block_mask(1))
    write_image(root / "imagesTr" / "spl_2_0000.nii.gz", ct_array(1))  # no label -> broken
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "spleen": 1}, "file_ending": ".nii.gz"}))
    result = index_dataset([root], tmp_path / "m.csv")
    assert [(c.case, c.layout) for c in result.cases] == [("spl_1", "nnunet")]
    assert set(np.unique(read_labels(result.cases[0].organ_mask).array)) == {0, labels.id_of("spleen")}
    assert [s.case for s in result.broken] == ["spl_2"]


# ------------------------------------------------------------ TotalSegmentator
def test_totalsegmentator_merge_smaller_structure_wins(tmp_path):
    root = tmp_path / "Totalsegmentator_dataset"
    case = root / "s0001"
    write_image(case / "ct.nii.gz", ct_array())
    seg = case / "segmentations"
    write_image(seg / "liver.nii.gz", block_mask(1))  # large
    write_image(seg / "aorta.nii.gz", block_mask(1, z=(0, 5), y=(5, 7), x=(5, 7)))  # small, inside the liver
    write_image(seg / "heart_atrium_left.nii.gz", block_mask(1, z=(0, 1)))  # v1 name: not in v2
    result = index_dataset([root], tmp_path / "m.csv")
    assert detect_layout(root).name == "totalsegmentator"
    merged = read_labels(result.cases[0].organ_mask).array
    assert merged[2, 6, 6] == labels.id_of("aorta") and merged[2, 4, 4] == labels.id_of("liver")
    assert result.cases[0].organ_mask == tmp_path / "masks" / "s0001_organs.nii.gz"
    assert any("heart_atrium_left" in n for n in result.notes)


# ---------------------------------------------------------------- LUNA16 / DICOM
def test_luna16_mhd(tmp_path):
    root = tmp_path / "LUNA16"
    uid = "1.3.6.1.4.1.14519.5.2.1.6279"
    write_image(root / "subset0" / f"{uid}.mhd", ct_array())
    write_image(root / "subset1" / "9.9.mhd", ct_array(1))
    result = index_dataset([root], tmp_path / "m.csv")
    assert [(c.case, c.layout) for c in result.cases] == [(uid, "luna16"), ("9.9", "luna16")]


def test_dicom_tree_one_row_per_ct_series_non_ct_skipped(tmp_path):
    root = tmp_path / "dicoms"
    write_dicom_series(root / "patient1" / "study" / "ct", "CT", series_uid="1.2.826.0.1.1")
    write_dicom_series(root / "patient1" / "study" / "mr", "MR", series_uid="1.2.826.0.1.2")
    write_dicom_series(root / "patient2" / "ct", "CT", series_uid="1.2.826.0.1.3")
    result = index_dataset([root], tmp_path / "m.csv")
    assert [(c.case, c.layout) for c in result.cases] == [("patient1_study_ct", "dicom-tree"),
                                                          ("patient2_ct", "dicom-tree")]
    assert [(s.case, s.reason) for s in result.skipped] == [("patient1_study_mr", "modality MR, not CT")]


# ------------------------------------------------------ the manifest in other commands
def mean_cells(table: str) -> dict:
    """``{column title: cell}`` of the table's mean row."""
    lines = [l for l in table.splitlines() if l.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    row = next(l for l in lines if l.startswith("| **mean**"))
    return dict(zip(header, (c.strip() for c in row.strip("|").split("|"))))


def test_dataset_commands_accept_the_manifest(case_folders, tmp_path, capsys):
    from napari_ctfoundation.engine.batch import discover_cases
    from napari_ctfoundation.engine.generation.manifest import read_manifest
    from napari_ctfoundation.engine.sparse.train import list_cts

    out = tmp_path / "m.csv"
    index_dataset([case_folders], out)
    cases = discover_cases(out)  # batch reconstruct, seg train, latents export
    assert [(c.name, c.label.name if c.label else None) for c in cases] == [("a", "organs.nii.gz"), ("b", None)]
    assert [p.resolve() for p in list_cts([out])] == [c.image.resolve() for c in cases]  # sparse train/finetune
    # gen cache: an empty organ_mask is fine (null organ condition), an empty report is not
    with pytest.raises(ConfigError, match="row 2: the report is empty") as info:
        read_manifest(out, check_labels=False)
    assert "organ_mask" not in str(info.value)
    only_a = write_manifest([c for c in read_dataset_manifest(out) if c.case == "a"], tmp_path / "sub" / "a.csv")
    (row,) = read_manifest(only_a)
    assert row.report.startswith("Liver present") and row.disease_mask.name == "tumour.nii.gz"
    assert row.extra["case"] == "a" and row.extra["layout"] == "case-folders"
    # compare reconstruct: one row per case, per region and the mean
    table = tmp_path / "table.md"
    assert cli(["compare", "reconstruct", str(out), "--backends", "bicubic_f16,nearest_f16", "--device", "cpu",
                "--max-slices", "3", "--csv", str(tmp_path / "cases.csv"), "--table", str(table)]) == 0
    text = table.read_text()
    assert "| a | a | 3/5 |" in text and "| b | b | 3/3 |" in text and "| **mean** | 2 cases | 6 |" in text
    assert "at most 3 axial slices per case" in text and "| **region a** | 1 cases | 3 |" in text
    before = tree(case_folders)  # a dataset folder works too: indexed in memory, nothing written into it
    assert cli(["compare", "reconstruct", str(case_folders), "--backends", "nearest_f16", "--device", "cpu",
                "--max-slices", "2"]) == 0
    assert "| **mean** | 2 cases | 4 |" in capsys.readouterr().out and tree(case_folders) == before
    with open(tmp_path / "cases.csv", newline="") as fh:  # one row per case and backend, written as it went
        assert sorted((r["case"], r["method"]) for r in csv.DictReader(fh)) == [
            ("a", "bicubic_f16"), ("a", "nearest_f16"), ("b", "bicubic_f16"), ("b", "nearest_f16")]
    assert cli(["compare", "reconstruct", str(out), "--backends", "bicubic_f16,nearest_f16", "--device", "cpu",
                "--max-slices", "3", "--csv", str(tmp_path / "cases.csv"), "--resume", "--matched-bicubic"]) == 0
    resumed = capsys.readouterr()
    assert "2/2" in resumed.err  # progress in cases
    before, after = mean_cells(text), mean_cells(resumed.out)
    assert set(after) == set(before) | {"bicubic_matched (f=2, C=1)"}
    assert all(after[k] == v for k, v in before.items())  # reused, not rerun: the same figures
    with open(tmp_path / "cases.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 6


def test_region_rule_and_slice_subsample():
    from napari_ctfoundation.engine.compare_dataset import region_of, subsample_slices
    from napari_ctfoundation.engine.dataset import DatasetCase
    from napari_ctfoundation.engine.volume import Volume

    case = DatasetCase("sts_001", Path("x.nii.gz"), "case-folders")
    assert region_of(case) == "sts" and region_of(case, {"sts_001": "extremity"}) == "extremity"
    case.region = "leg"
    assert region_of(case, {"sts_001": "extremity"}) == "leg"
    vol = Volume(np.arange(41, dtype=np.float32)[:, None, None] * np.ones((41, 4, 4), np.float32),
                 (1.0, 1.0, 2.0))
    sub = subsample_slices(vol, 5)
    assert sub.array[:, 0, 0].tolist() == [0, 10, 20, 30, 40] and sub.spacing[2] == 20.0
    assert subsample_slices(vol, 100) is vol
