"""napari reader, writer and sample-data contributions, on the real samples.

Display orientation is checked on anatomy, not only on metadata: the liver
(patient right) must sit on the image left, the spine (posterior) at the
bottom, and organ labels must overlay their CT exactly (same grid), which
the HU inside the liver and lungs then confirm.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_ctfoundation import napari_io
from napari_ctfoundation.engine import labels as vocab
from napari_ctfoundation.engine.io import read_labels, read_volume

MANIFEST = Path(napari_io.__file__).with_name("napari.yaml")
VERTEBRAE = list(range(25, 51))  # sacrum .. C1
LUNGS = list(range(10, 15))
LIVER = 5


# ------------------------------------------------------------- manifest
def test_manifest_validates_and_imports():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_file(MANIFEST)
    manifest.validate_imports()  # every python_name resolves
    installed = PluginManifest.from_distribution("napari-ctfoundation")
    assert installed.name == manifest.name == "napari-ctfoundation"
    contributions = manifest.contributions
    assert {s.key for s in contributions.sample_data} >= {"abdomen_3mm", "dicom_series"}
    assert {tuple(w.layer_types) for w in contributions.writers} >= {("image",), ("labels",)}
    titles = {w.display_name for w in contributions.widgets}
    assert {"Load CT", "Foundation VAE reconstruction"} <= titles


# --------------------------------------------------------------- reader
def test_reader_refuses_what_it_cannot_read(tmp_path, dicom_dir):
    text = tmp_path / "notes.txt"
    text.write_text("not a volume")
    empty = tmp_path / "empty.nii.gz"
    empty.touch()
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.txt").write_text("x")
    assert napari_io.get_reader(str(tmp_path / "missing.nii.gz")) is None
    assert napari_io.get_reader(str(text)) is None
    assert napari_io.get_reader(str(empty)) is None
    assert napari_io.get_reader(str(folder)) is None
    assert napari_io.get_reader([str(text), str(empty)]) is None
    assert napari_io.get_reader(str(dicom_dir)) is napari_io.read_layers


@pytest.mark.parametrize("damage", ["truncated", "not_an_image", "nan"])
def test_reader_broken_file_gives_notification_not_traceback(tmp_path, nifti_ct, damage):
    from napari.utils.notifications import notification_manager

    path = tmp_path / ("broken.mha" if damage == "nan" else "broken.nii.gz")
    if damage == "truncated":
        data = nifti_ct.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif damage == "not_an_image":
        with gzip.open(path, "wb") as fh:
            fh.write(b"this is not a NIfTI file at all" * 20)
    else:  # (MHA: SimpleITK's NIfTI reader turns NaN into 0 by itself)
        import SimpleITK as sitk

        array = np.zeros((4, 8, 8), np.float32)
        array[1, 2, 3] = np.nan
        sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    reader = napari_io.get_reader(str(path))
    assert reader is not None  # the suffix is ours; the content is what fails
    before = len(notification_manager.records)
    assert reader(str(path)) == [(None,)]  # "nothing to add", napari shows no traceback
    messages = [str(n.message) for n in notification_manager.records[before:]]
    assert any(path.name in m for m in messages), messages


def _layers(path, labels_path):
    reader = napari_io.get_reader(str(path))
    (ct,) = reader(str(path))
    (organs,) = napari_io.get_reader(str(labels_path))(str(labels_path))
    return ct, organs


def _assert_overlay(ct, organs):
    assert ct[2] == "image" and organs[2] == "labels"
    assert ct[0].shape == organs[0].shape
    np.testing.assert_allclose(ct[1]["scale"], organs[1]["scale"], atol=1e-4)
    np.testing.assert_allclose(ct[1]["translate"], organs[1]["translate"], atol=1e-3)
    assert ct[1]["metadata"]["geometry"]["orientation"] == "LPS"
    assert organs[1]["metadata"]["geometry"]["orientation"] == "LPS"


def _assert_radiological(ct_array, organ_array):
    """Liver on the image left (patient right), spine below the body centre."""
    body = ct_array > -500
    _, body_y, body_x = (c.mean() for c in np.nonzero(body))
    _, liver_y, liver_x = (c.mean() for c in np.nonzero(organ_array == LIVER))
    assert liver_x < body_x - 10, "liver must be on the image left (patient right)"
    _, spine_y, spine_x = (c.mean() for c in np.nonzero(np.isin(organ_array, VERTEBRAE)))
    assert spine_y > body_y + 5, "spine must be at the bottom (anterior at the top)"
    assert abs(spine_x - body_x) < 0.15 * ct_array.shape[2], "spine near the midline"


def test_nifti_sample_display_orientation_and_alignment(nifti_ct, nifti_organs):
    ct, organs = _layers(nifti_ct, nifti_organs)
    _assert_overlay(ct, organs)
    assert ct[1]["metadata"]["source_orientation"] == "RAS"
    assert ct[0].dtype == np.float32  # HU, even though the file is int16
    assert ct[0].shape == (30, 101, 122)
    np.testing.assert_allclose(ct[1]["scale"], (3.0, 3.0, 3.0), atol=1e-4)
    hu, ids = ct[0], organs[0]
    lungs = np.isin(ids, LUNGS)
    assert lungs.sum() > 100
    assert hu[lungs].mean() < -500, "lungs must be air"
    assert 0 < hu[ids == LIVER].mean() < 200, "liver must be soft tissue"
    _assert_radiological(hu, ids)


def test_dicom_sample_display_orientation_and_alignment(dicom_dir, dicom_organs):
    ct, organs = _layers(dicom_dir, dicom_organs)
    _assert_overlay(ct, organs)
    # the labels file is stored LAS, the series LPS: both end up on one grid
    assert organs[1]["metadata"]["source_orientation"] == "LAS"
    assert ct[0].shape == (20, 512, 512)
    np.testing.assert_allclose(ct[1]["scale"], (2.0, 0.9765625, 0.9765625), atol=1e-4)
    hu, ids = ct[0], organs[0]
    liver = hu[ids == LIVER]
    assert liver.size > 1000
    assert 0 < liver.mean() < 200, f"liver mean {liver.mean():.0f} HU is not soft tissue"
    _assert_radiological(hu, ids)


def test_labels_layer_has_names_and_stable_colours(nifti_organs):
    from napari.layers import Layer

    data, kwargs, kind = napari_io.get_reader(str(nifti_organs))(str(nifti_organs))[0]
    layer = Layer.create(data, kwargs, kind)
    features = layer.features.set_index("index")
    assert features.loc[LIVER, "name"] == "liver"
    np.testing.assert_allclose(layer.colormap.map(LIVER)[:3], vocab.label_color(LIVER)[:3], atol=1e-3)
    assert layer.colormap.map(0)[3] == 0  # background transparent
    assert kwargs["metadata"]["label_names"][LIVER] == "liver"


def test_label_rule_by_name_and_by_values(tmp_path, nifti_ct, nifti_organs):
    # int16 CT: integer typed but holds air (< 0) -> image
    assert napari_io.volume_layer_data(nifti_ct)[2] == "image"
    # label map under a neutral name: integer, non-negative, few values -> labels
    neutral = tmp_path / "case001.nii.gz"
    shutil.copy(nifti_organs, neutral)
    assert not napari_io.is_label_path(neutral)
    assert napari_io.volume_layer_data(neutral)[2] == "labels"
    for name in ("organs.nii.gz", "ct_seg.nii.gz", "liver-mask.nrrd", "labels_v2.mha"):
        assert napari_io.is_label_path(name)
    for name in ("ct.nii.gz", "segment_free.nii", "assessment.nii.gz"):
        assert not napari_io.is_label_path(name) or name.startswith("seg")


# --------------------------------------------------------------- writer
def test_writer_round_trip_keeps_source_geometry(tmp_path, nifti_ct, dicom_organs):
    for source, writer in ((nifti_ct, napari_io.write_image), (dicom_organs, napari_io.write_labels)):
        data, kwargs, _ = napari_io.get_reader(str(source))(str(source))[0]
        out = tmp_path / f"out_{source.parent.name}.nii.gz"
        assert writer(str(out), data, kwargs) == [str(out)]
        original = read_labels(source) if writer is napari_io.write_labels else read_volume(source)
        written = read_labels(out) if writer is napari_io.write_labels else read_volume(out)
        assert written.orientation_code() == original.orientation_code()
        np.testing.assert_allclose(written.affine_lps(), original.affine_lps(), atol=1e-4)
        np.testing.assert_array_equal(written.array, original.array)


def test_writer_uses_layer_transform_after_a_move(tmp_path, nifti_ct):
    data, kwargs, _ = napari_io.get_reader(str(nifti_ct))(str(nifti_ct))[0]
    moved = dict(kwargs, translate=tuple(np.add(kwargs["translate"], (0.0, 0.0, 30.0))))
    out = tmp_path / "moved.nii.gz"
    napari_io.write_image(str(out), data, moved)
    original, written = read_volume(nifti_ct), read_volume(out)
    assert written.orientation_code() == "RAS"
    np.testing.assert_array_equal(written.array, original.array)
    # +30 mm along display x (patient left, LPS +x)
    np.testing.assert_allclose(np.subtract(written.origin, original.origin), (30.0, 0.0, 0.0), atol=1e-3)


def test_writer_never_overwrites_the_source(tmp_path, nifti_ct):
    from napari.utils.notifications import notification_manager

    source = tmp_path / "ct.nii.gz"
    shutil.copy(nifti_ct, source)
    data, kwargs, _ = napari_io.get_reader(str(source))(str(source))[0]
    before = source.read_bytes()
    n = len(notification_manager.records)
    assert napari_io.write_image(str(source), data, kwargs) == []
    assert source.read_bytes() == before
    assert any("refusing" in str(r.message) for r in notification_manager.records[n:])


# ---------------------------------------------------------- sample data
def test_sample_data_layers(monkeypatch, tmp_path):
    abdomen = napari_io.sample_abdomen_3mm()
    assert [kind for *_, kind in abdomen] == ["image", "labels"]
    _assert_overlay(*abdomen)
    monkeypatch.setenv("CTFOUNDATION_SAMPLE_DATA", str(tmp_path))
    monkeypatch.setattr(napari_io, "__file__", str(tmp_path / "pkg" / "napari_io.py"))
    from napari_ctfoundation.engine.errors import VolumeReadError

    with pytest.raises(VolumeReadError, match="sample data not found"):
        napari_io.sample_data_dir()


def test_orientation_check_detects_flips(nifti_ct, nifti_organs):
    """The anatomy checks above are not vacuous: a mirrored slice fails them."""
    ct, organs = _layers(nifti_ct, nifti_organs)
    with pytest.raises(AssertionError, match="image left"):
        _assert_radiological(ct[0][:, :, ::-1], organs[0][:, :, ::-1])
    with pytest.raises(AssertionError, match="anterior at the top"):
        _assert_radiological(ct[0][:, ::-1], organs[0][:, ::-1])
