"""The public Python API (issue 15): pinned names, lazy and cheap import, docstrings, progress="auto"."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import numpy as np
import pytest

import napari_ctfoundation as ctf

# Renaming or removing a public name is a deliberate act: change this list with it.
PINNED = [
    # volumes and I/O
    "Volume", "read_volume", "read_labels", "read_dicom_series", "write_volume", "sample_data_dir", "organ_names", "lesion_names",
    # errors
    "CTFoundationError", "VolumeReadError", "VolumeWriteError", "GeometryError", "ConfigError",
    "OperationCancelled",
    # progress
    "TqdmProgress",
    # windows and presets
    "HUWindow", "WINDOW_PRESETS",
    # VAEs
    "load_vae", "FoundationVAE", "VAE_BACKENDS", "resolve_device",
    # reconstruction and latents
    "reconstruct_volume", "ReconstructionResult", "compare_reconstruction", "CompareResult",
    "format_compare_table", "encode_volume", "decode_latents", "save_latents", "load_latents", "LatentVolume",
    # metrics
    "volume_metrics", "sparse_metrics",
    # sparse-view CBCT
    "ConeBeamGeometry", "GEOMETRY_PRESETS", "NoiseModel", "ProjectionSet", "simulate_sparse_views",
    "reconstruct_sparse_views", "SPARSE_METHODS", "evaluate_sparse_views", "DiCEConfig", "load_dice",
    "DiCETrainSettings", "build_dice_cache", "train_dice",
    # conditional generation
    "GenerationPipeline", "GenerationResult", "read_generation_manifest", "build_generation_cache",
    "GenerationTrainConfig", "train_generation", "evaluate_generation",
    # dataset indexing
    "index_dataset", "IndexResult", "format_index_summary", "DATASET_LAYOUTS", "DatasetCase",
    "read_dataset_manifest", "write_dataset_manifest", "compare_dataset", "DatasetComparison",
    "format_dataset_table",
    # batch workflows
    "Case", "discover_cases", "run_batch", "BatchSummary", "make_reconstruct_case", "make_export_case",
    "export_nnunet",
    # segmentation
    "SegConfig", "SegCase", "load_seg_case", "load_seg_dataset", "train_segmenter", "load_segmenter",
    "evaluate_segmenter",
]

HEAVY = ("torch", "itk", "napari", "diffusers", "transformers", "monai", "SimpleITK")


def test_all_is_pinned():
    assert ctf.__all__ == PINNED
    assert len(set(ctf.__all__)) == len(ctf.__all__)


def test_every_public_name_resolves_and_is_listed_by_dir():
    listed = dir(ctf)
    for name in ctf.__all__:
        assert getattr(ctf, name) is not None, name
        assert name in listed, name
    with pytest.raises(AttributeError, match="no_such_name"):
        ctf.no_such_name  # noqa: B018


def _fresh_python(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_loads_no_heavy_library():
    loaded = _fresh_python(
        "import sys, json, napari_ctfoundation\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    assert loaded == []


def test_resolving_every_name_still_loads_no_deep_learning_library():
    # The names are there to be used from notebooks: looking them up must not pull torch and friends in;
    # the functions import those when called.
    loaded = _fresh_python(
        "import sys, json, napari_ctfoundation as ctf\n"
        "[getattr(ctf, n) for n in ctf.__all__]\n"
        "print(json.dumps([m for m in ('torch', 'itk', 'napari', 'diffusers', 'transformers', 'monai') "
        "if m in sys.modules]))")
    assert loaded == []


def _documented(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    if inspect.isclass(obj) and doc.startswith(obj.__name__ + "("):
        return ""  # the signature dataclasses put in when a class has no docstring
    return doc


@pytest.mark.parametrize("name", PINNED)
def test_every_public_name_has_a_docstring_that_says_what_it_raises(name):
    obj = getattr(ctf, name)
    if isinstance(obj, dict):
        return  # preset tables: documented in their module and in docs/python_api.md
    doc = _documented(obj)
    assert len(doc) > 40, f"{name} needs a docstring"
    takes_input = inspect.isfunction(obj) and len(inspect.signature(obj).parameters) > 0
    if takes_input:
        assert "raise" in doc.lower(), f"{name}: say what is raised for bad input"


def test_hu_window_preset_as_in_the_issue_example():
    assert ctf.HUWindow.preset("lung") == ctf.HUWindow(-1350.0, 150.0)
    assert ctf.HUWindow.preset("lung") == ctf.HUWindow.from_preset("lung")
    assert set(ctf.WINDOW_PRESETS) >= {"ct", "lung", "bone", "abdomen"}
    with pytest.raises(ctf.ConfigError, match="known: .*lung"):
        ctf.HUWindow.preset("lungs")


def test_issue_snippet_reads_reconstructs_and_writes(nifti_ct, tmp_path):
    ct = ctf.read_volume(nifti_ct).cropped(z=slice(10, 12), y=slice(20, 84), x=slice(30, 94))
    res = ctf.reconstruct_volume(ct, vae="taef2", window=ctf.HUWindow.preset("lung"), device="cpu")
    assert set(res.metrics) >= {"psnr_db", "ssim", "ms_ssim", "mae_hu"}
    assert res.metrics["window_hu"] == [-1350.0, 150.0]
    assert res.metrics["psnr_db"] > 20
    out = ctf.write_volume(res.volume, tmp_path / "recon.nii.gz")
    back = ctf.read_volume(out)
    assert back.shape == ct.shape
    np.testing.assert_allclose(back.origin, ct.origin, atol=1e-3)
    np.testing.assert_allclose(back.array, res.volume.array, atol=1e-2)


def test_progress_auto_draws_a_tqdm_bar(capsys):
    from napari_ctfoundation.engine.progress import Tracker

    tracker = Tracker(3, "slices", "auto")
    for _ in range(3):
        tracker.advance()
    err = capsys.readouterr().err
    assert "3/3" in err and "slices" in err


def test_progress_auto_in_reconstruction_shows_one_bar_over_both_passes(capsys):
    volume = ctf.Volume(np.linspace(-1000, 1000, 2 * 32 * 32, dtype=np.float32).reshape(2, 32, 32))
    ctf.reconstruct_volume(volume, "bicubic_f16", device="cpu", compute_metrics=False, progress="auto")
    err = capsys.readouterr().err
    assert "4/4" in err and "slice passes" in err


def test_tqdm_progress_starts_a_new_bar_when_the_work_changes(capsys):
    bar = ctf.TqdmProgress(desc="demo")
    bar(0, 0, "loading model")  # a phase without a count: its name and elapsed time
    bar(0, 0, "loading model")
    bar(0, 2, "views")
    bar(2, 2, "views")
    bar(1, 5, "steps")  # a new stretch of work: new bar
    bar.close()
    bar.close()  # closing twice is harmless
    err = capsys.readouterr().err
    assert "demo" in err and "2/2" in err and "1/5" in err
    lines = err.split("\n")  # one line per bar (tqdm redraws a line with carriage returns)
    assert "demo loading model [" in lines[0] and "loading model" not in "\n".join(lines[1:])


def test_bad_progress_argument_is_a_config_error():
    from napari_ctfoundation.engine.progress import resolve_progress

    assert resolve_progress(None) is None
    assert isinstance(resolve_progress("auto"), ctf.TqdmProgress)
    callback = lambda done, total, unit: None  # noqa: E731
    assert resolve_progress(callback) is callback
    with pytest.raises(ctf.ConfigError, match="progress='tqdm'"):
        resolve_progress("tqdm")
    with pytest.raises(ctf.ConfigError):
        ctf.reconstruct_volume(ctf.Volume(np.zeros((1, 16, 16), np.float32)), "nearest_f16", device="cpu",
                               progress=3)
