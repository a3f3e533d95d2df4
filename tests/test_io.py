"""CT I/O: real samples, geometry round trips and every bad input."""

from __future__ import annotations

import gzip
import shutil
import warnings

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from napari_ctfoundation.engine.errors import VolumeReadError, VolumeWriteError
from napari_ctfoundation.engine.io import CTFoundationWarning, read_labels, read_volume, write_volume
from napari_ctfoundation.engine.volume import Volume


def test_nifti_sample(nifti_ct):
    vol = read_volume(nifti_ct)
    assert vol.shape == (30, 101, 122) and vol.array.dtype == np.float32
    assert vol.spacing == (3.0, 3.0, 3.0)
    assert vol.orientation_code() == "RAS"
    assert np.allclose(vol.affine_ras(), nib.load(str(nifti_ct)).affine, atol=1e-3)
    disp = vol.to_display()
    assert disp.orientation_code() == "LPS" and np.allclose(disp.direction, np.eye(3))
    # Same physical image: the centre voxel sits at the same LPS point.
    assert np.allclose(vol.array[15, 50, 61], disp.array[15, 101 - 1 - 50, 122 - 1 - 61])
    assert disp.to_source_orientation().same_grid(vol)


def test_dicom_series_rescaled_and_aligned_with_labels(dicom_dir, dicom_organs):
    vol = read_volume(dicom_dir)
    assert vol.shape == (20, 512, 512)
    assert vol.metadata["dicom"]["rescale_intercept"] == "-1024"
    assert vol.array.min() == -1024  # intercept applied (stored values start at 0)
    labels = read_labels(dicom_organs)
    assert labels.orientation_code() != vol.orientation_code()  # stored flipped in y...
    ct, organs = vol.to_display(), labels.to_display()
    assert organs.same_grid(ct)  # ...but both land on one grid in display orientation
    liver = ct.array[organs.array == 5]
    assert liver.size > 1000 and 0 < liver.mean() < 200  # soft tissue
    assert ct.array[organs.array == 0].mean() < -300  # background mostly air


def test_nifti_lungs_are_air(nifti_ct, nifti_organs):
    ct, organs = read_volume(nifti_ct).to_display(), read_labels(nifti_organs).to_display()
    lungs = np.isin(organs.array, [10, 11, 12, 13, 14])
    assert lungs.sum() > 100 and ct.array[lungs].mean() < -600
    assert 0 < ct.array[organs.array == 5].mean() < 200  # liver


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_write_read_round_trip(nifti_ct, tmp_path, suffix):
    vol = read_volume(nifti_ct)
    out = write_volume(vol, tmp_path / f"copy{suffix}")
    again = read_volume(out)
    assert again.same_grid(vol, atol=1e-4)
    assert np.array_equal(again.array, vol.array)
    if suffix.startswith(".nii"):
        assert np.allclose(nib.load(str(out)).affine, nib.load(str(nifti_ct)).affine, atol=1e-4)


def test_write_never_overwrites_input(nifti_ct, tmp_path):
    src = tmp_path / "ct.nii.gz"
    shutil.copy(nifti_ct, src)
    before = src.read_bytes()
    with pytest.raises(VolumeWriteError, match="refusing to write over the input"):
        write_volume(read_volume(src), src, protect=(src,))
    assert src.read_bytes() == before
    with pytest.raises(VolumeWriteError, match="unsupported output type"):
        write_volume(read_volume(src), tmp_path / "out.png")


# ------------------------------------------------------------ bad inputs
def _write_nifti(path, array):
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    return path


def test_missing_path(tmp_path):
    with pytest.raises(VolumeReadError, match="no such file or folder"):
        read_volume(tmp_path / "nope.nii.gz")


def test_truncated_and_corrupt_gzip(nifti_ct, tmp_path):
    data = nifti_ct.read_bytes()
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(VolumeReadError, match="truncated.nii.gz: corrupt or truncated gzip"):
        read_volume(truncated)
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(data[:20] + bytes(200) + data[220:])
    with pytest.raises(VolumeReadError, match="corrupt or truncated gzip"):
        read_volume(corrupt)


def test_non_image_and_empty_files(tmp_path):
    text = tmp_path / "notes.nii"
    text.write_text("this is not an image\n" * 20)
    with pytest.raises(VolumeReadError, match="notes.nii: not a readable image"):
        read_volume(text)
    empty = tmp_path / "empty.nii.gz"
    empty.write_bytes(b"")
    with pytest.raises(VolumeReadError, match="the file is empty"):
        read_volume(empty)
    gz_text = tmp_path / "text.nii.gz"
    gz_text.write_bytes(gzip.compress(b"hello"))
    with pytest.raises(VolumeReadError, match="text.nii.gz: not a readable image"):
        read_volume(gz_text)


def test_2d_4d_and_rgb_images(tmp_path):
    with pytest.raises(VolumeReadError, match="2D image"):
        read_volume(_write_nifti(tmp_path / "slice.nii.gz", np.zeros((32, 32), np.int16)))
    with pytest.raises(VolumeReadError, match="4D image"):
        nib.save(nib.Nifti1Image(np.zeros((8, 8, 4, 2), np.int16), np.eye(4)), str(tmp_path / "four.nii.gz"))
        read_volume(tmp_path / "four.nii.gz")
    rgb = sitk.GetImageFromArray(np.zeros((4, 8, 8, 3), np.uint8), isVector=True)
    sitk.WriteImage(rgb, str(tmp_path / "rgb.nii.gz"))
    with pytest.raises(VolumeReadError, match="3-channel"):
        read_volume(tmp_path / "rgb.nii.gz")
    # a trailing time axis of length 1 is just a 3D volume
    nib.save(nib.Nifti1Image(np.ones((8, 8, 4, 1), np.int16), np.eye(4)), str(tmp_path / "t1.nii.gz"))
    assert read_volume(tmp_path / "t1.nii.gz").shape == (4, 8, 8)


def test_nan_inf_and_empty_arrays(tmp_path):
    bad = np.zeros((4, 8, 8), np.float32)
    bad[1, 2, 3] = np.nan
    bad[2, 2, 3] = np.inf
    with pytest.raises(VolumeReadError, match="2 voxels are NaN or infinite"):
        read_volume(_write_nifti(tmp_path / "nan.nii.gz", bad))
    header = nib.Nifti1Image(np.zeros((0, 8, 8), np.int16), np.eye(4))
    nib.save(header, str(tmp_path / "zero.nii"))
    with pytest.raises(VolumeReadError, match="zero.nii: not a readable image"):
        read_volume(tmp_path / "zero.nii")


def test_labels_must_be_whole_non_negative(tmp_path):
    with pytest.raises(VolumeReadError, match="whole numbers"):
        read_labels(_write_nifti(tmp_path / "frac.nii.gz", np.full((3, 4, 4), 0.5, np.float32)))
    with pytest.raises(VolumeReadError, match="negative"):
        read_labels(_write_nifti(tmp_path / "neg.nii.gz", np.full((3, 4, 4), -1, np.int16)))


# ------------------------------------------------------------ DICOM folders
def write_series(folder, z_positions, uid="1.2.826.0.1.3680043.2.1125.1", size=16):
    """A synthetic CT series with the given slice positions (mm)."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for i, z in enumerate(z_positions):
        image = sitk.GetImageFromArray(np.full((1, size, size), 1024 + 10 * i, np.int16))
        image.SetSpacing((0.8, 0.8, 1.0))
        tags = {
            "0008|0060": "CT", "0020|000e": uid, "0020|000d": uid + ".0",
            "0008|0018": f"{uid}.{i + 1}", "0020|0013": str(i + 1),
            "0020|0032": f"0\\0\\{z}", "0020|0037": "1\\0\\0\\0\\1\\0",
            "0028|1052": "-1024", "0028|1053": "1", "0018|0050": "1",
        }
        for key, value in tags.items():
            image.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"{uid}_{i:03d}.dcm"))
        writer.Execute(image)
    return folder


def test_single_dicom_file_is_2d(dicom_dir):
    first = sorted(dicom_dir.iterdir())[0]
    with pytest.raises(VolumeReadError, match="2D image.*pass its folder"):
        read_volume(first)


def test_dicom_folder_without_series(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(VolumeReadError, match="no DICOM series"):
        read_volume(tmp_path)


def test_dicom_missing_slices(tmp_path):
    write_series(tmp_path / "gap", [0, 2, 4, 6, 10, 12, 14])
    with pytest.raises(VolumeReadError, match="1 slice\\(s\\) missing"):
        read_volume(tmp_path / "gap")


def test_dicom_nonuniform_spacing_warns(tmp_path):
    write_series(tmp_path / "uneven", [0, 2, 4, 6.5, 8.5, 10.5])
    with pytest.warns(CTFoundationWarning, match="non-uniform slice spacing"):
        vol = read_volume(tmp_path / "uneven")
    assert vol.shape == (6, 16, 16)


def test_dicom_folder_with_two_series_reads_largest(tmp_path):
    folder = tmp_path / "two"
    write_series(folder, [0, 2, 4, 6, 8], uid="1.2.3.4.1")
    write_series(folder, [0, 2, 4], uid="1.2.3.4.2")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vol = read_volume(folder)
    assert vol.shape[0] == 5
    assert np.all(np.diff(vol.array.mean(axis=(1, 2))) == 10)  # slices of series 1, in position order
    assert any("2 DICOM series found; reading the largest" in str(w.message) for w in caught)


def test_cropped_volume_keeps_its_place(nifti_ct):
    vol = read_volume(nifti_ct)
    crop = vol.cropped(z=slice(5, 10), y=slice(20, 40), x=slice(30, 50))
    index_in_crop = np.array([3, 4, 2, 1.0])  # (x, y, z, 1)
    index_in_full = index_in_crop + [30, 20, 5, 0]
    assert np.allclose(crop.affine_lps() @ index_in_crop, vol.affine_lps() @ index_in_full)
    assert crop.array[2, 4, 3] == vol.array[7, 24, 33]
    assert isinstance(crop, Volume)
