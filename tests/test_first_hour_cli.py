"""Issue 14, CLI and packaging: the traps a new user hit in the first hour.

The user-facing cases run the real ``ctfoundation`` entry in a subprocess,
as typed. The matrix "every writing command checks its output first" runs
in-process with the engine's work functions replaced by a trap, which
proves that the output is refused *before* any work starts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from napari_ctfoundation import napari_io
from napari_ctfoundation.cli import build_parser, main, show_only_own_warnings
from napari_ctfoundation.engine.errors import VolumeWriteError
from napari_ctfoundation.engine.io import (CTFoundationWarning, check_output_path, read_labels, read_volume,
                                           write_volume)
from napari_ctfoundation.engine.sparse.geometry import PRESETS

REPO = Path(__file__).resolve().parent.parent
MANIFEST = Path(napari_io.__file__).with_name("napari.yaml")
GEO = PRESETS["deepsparse"].scaled(8, name="test-32")


def run_cli(*args, env=None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    """``python -m napari_ctfoundation.cli ARGS`` as a user would run it (no -W flags)."""
    full_env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    full_env["OMP_NUM_THREADS"] = "1"
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "napari_ctfoundation.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd)


def one_error_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-2000:]
    return lines[0]


# ------------------------------------------------- 1. negative numbers as typed
@pytest.mark.parametrize("argv, dest, value", [
    (["reconstruct", "ct.nii.gz", "o.nii.gz", "--window", "-160,240"], "window", "-160,240"),
    (["reconstruct", "ct.nii.gz", "o.nii.gz", "--window", "-1000,-200"], "window", "-1000,-200"),
    (["compare", "reconstruct", "ct.nii.gz", "--window", "-.5e3,500"], "window", "-.5e3,500"),
    (["batch", "reconstruct", "in", "out", "--window", "-160,240"], "window", "-160,240"),
    (["latents", "export", "in", "out", "--window", "-160,240"], "window", "-160,240"),
    (["gen", "cache", "m.csv", "cache", "--window", "-160,240"], "window", "-160,240"),
    (["gen", "evaluate", "demo", "m.csv", "--guidance", "-1,1.5"], "guidance", "-1,1.5"),
    (["sparse", "train", "ct.nii.gz", "--out", "o", "--density-scale", "-0.1,1.1"], "density_scale", "-0.1,1.1"),
    (["seg", "train", "ds", "model", "--hu", "-175,250"], "hu", "-175,250"),
    (["sparse", "simulate", "ct.nii.gz", "p", "--views", "6", "--electronic-sigma", "-1"], "electronic_sigma", -1.0),
])
def test_negative_numbers_parse_as_typed(argv, dest, value):
    assert getattr(build_parser().parse_args(argv), dest) == value


def test_negative_window_reaches_the_engine(nifti_ct, tmp_path, monkeypatch):
    import napari_ctfoundation.engine.reconstruct as recon

    seen = {}

    def capture(volume, spec, window, **kwargs):
        seen["window"] = (window.lo, window.hi)
        raise KeyboardInterrupt  # stop here: the window is what this test is about

    monkeypatch.setattr(recon, "reconstruct_volume", capture)
    assert main(["reconstruct", str(nifti_ct), str(tmp_path / "o.nii.gz"), "--window", "-160,240"]) == 130
    assert seen["window"] == (-160.0, 240.0)


def test_negative_window_as_typed_in_a_shell(tmp_path):
    done = run_cli("reconstruct", tmp_path / "missing.nii.gz", tmp_path / "o.nii.gz", "--window", "-160,240")
    line = one_error_line(done)  # the option parsed; the missing input is what fails
    assert "no such file or folder" in line and "expected one argument" not in done.stderr


def test_mistyped_negative_window_gets_the_options_own_message(nifti_ct, tmp_path, capsys):
    # A typo after the minus sign must not turn into argparse's "expected one argument".
    assert main(["reconstruct", str(nifti_ct), str(tmp_path / "o.nii.gz"), "--window", "-160,240x"]) == 2
    err = capsys.readouterr().err
    assert "--window" in err and "-160,240x" in err and "expected one argument" not in err
    assert not (tmp_path / "o.nii.gz").exists()


# -------------------------------------------- 2. outputs checked before any work
def _trap(*_args, **_kwargs):
    raise AssertionError("work started before the output was checked")


TRAPS = [
    ("napari_ctfoundation.engine.io", "read_volume"),
    ("napari_ctfoundation.engine.io", "read_labels"),
    ("napari_ctfoundation.engine.reconstruct", "reconstruct_volume"),
    ("napari_ctfoundation.engine.generation.pipeline.GenerationPipeline", "from_pretrained"),
    ("napari_ctfoundation.engine.generation.cache", "build_cache"),
    ("napari_ctfoundation.engine.generation.train", "train"),
    ("napari_ctfoundation.engine.generation.manifest", "read_manifest"),
    ("napari_ctfoundation.engine.sparse.pipeline", "simulate_ct"),
    ("napari_ctfoundation.engine.sparse.pipeline", "evaluate_ct"),
    ("napari_ctfoundation.engine.sparse.simulate.ProjectionSet", "load"),
    ("napari_ctfoundation.engine.sparse.train", "build_cache"),
    ("napari_ctfoundation.engine.sparse.train", "train_dice"),
    ("napari_ctfoundation.engine.batch", "run_batch"),
    ("napari_ctfoundation.engine.batch", "export_nnunet"),
    ("napari_ctfoundation.engine.batch.reconstruct", "make_reconstruct_case"),
    ("napari_ctfoundation.engine.batch.latents", "make_export_case"),
    ("napari_ctfoundation.engine.compare", "compare_reconstruction"),
    ("napari_ctfoundation.engine.latents", "load_latents"),
    ("napari_ctfoundation.engine.segmentation", "load_dataset"),
    ("napari_ctfoundation.engine.segmentation", "load_model"),
    ("napari_ctfoundation.engine.segmentation", "read_evaluation"),
]


@pytest.fixture()
def trapped(monkeypatch):
    """Every engine entry point that reads data, loads a model or computes raises."""
    for target, name in TRAPS:
        monkeypatch.setattr(f"{target}.{name}", _trap)


# {ct}: a real CT; {dir}: a real folder; {blocked}: a path below a plain file (cannot be created)
WRITING_COMMANDS = [
    (["reconstruct", "{ct}", "{tmp}/out/x.png"], "unsupported output type"),
    (["reconstruct", "{ct}", "{blocked}/r.nii.gz"], "is a file, not a folder"),
    (["reconstruct", "{ct}", "{tmp}/r.nii.gz", "--difference", "{tmp}/d.png"], "unsupported output type"),
    (["reconstruct", "{ct}", "{existing}"], "exists; pass --overwrite"),
    (["gen", "sample", "demo", "{tmp}/g.png", "--organs", "{organs}"], "unsupported output type"),
    (["gen", "cache", "{tmp}/m.csv", "{blocked}/cache"], "is a file, not a folder"),
    (["gen", "train", "{dir}", "{blocked}/run"], "is a file, not a folder"),
    (["gen", "evaluate", "demo", "{tmp}/m.csv", "--out", "{blocked}/e.json"], "is a file, not a folder"),
    (["sparse", "simulate", "{ct}", "{blocked}/proj", "--views", "6"], "is a file, not a folder"),
    (["sparse", "reconstruct", "{dir}", "{tmp}/fdk.png"], "unsupported output type"),
    (["sparse", "evaluate", "{ct}", "--out", "{blocked}/t.csv"], "is a file, not a folder"),
    (["sparse", "train", "{ct}", "--out", "{blocked}/ckpt"], "is a file, not a folder"),
    (["sparse", "finetune", "{ct}", "--out", "{blocked}/ckpt", "--step", "1", "--init", "{dir}"],
     "is a file, not a folder"),
    (["batch", "reconstruct", "{dir}", "{blocked}/out"], "is a file, not a folder"),
    (["batch", "nnunet-export", "{dir}", "{blocked}/raw", "--dataset-id", "1", "--name", "x"],
     "is a file, not a folder"),
    (["compare", "reconstruct", "{ct}", "--csv", "{blocked}/c.csv"], "is a file, not a folder"),
    (["latents", "export", "{ct}", "{blocked}/lat"], "is a file, not a folder"),
    (["latents", "decode", "{tmp}/x.safetensors", "{tmp}/d.png"], "unsupported output type"),
    (["seg", "train", "{dir}", "{blocked}/model"], "is a file, not a folder"),
    (["seg", "evaluate", "{dir}", "{dir}", "{blocked}/eval"], "is a file, not a folder"),
    (["seg", "compare", "{dir}", "{dir}", "--out", "{blocked}/t.md"], "is a file, not a folder"),
]


@pytest.mark.parametrize("args, message", WRITING_COMMANDS, ids=lambda a: " ".join(a[:2]) if isinstance(a, list) else None)
def test_every_writing_command_checks_its_output_first(args, message, trapped, nifti_ct, nifti_organs, tmp_path,
                                                        monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blocker.txt").write_text("a file where a folder would have to be")
    (tmp_path / "folder").mkdir()
    (tmp_path / "existing.nii.gz").write_bytes(b"old")
    values = {"{ct}": str(nifti_ct), "{organs}": str(nifti_organs), "{dir}": str(tmp_path / "folder"),
              "{blocked}": str(tmp_path / "blocker.txt"), "{existing}": str(tmp_path / "existing.nii.gz"),
              "{tmp}": str(tmp_path)}
    argv = []
    for a in args:
        for key, value in values.items():
            a = a.replace(key, value)
        argv.append(a)
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert (tmp_path / "existing.nii.gz").read_bytes() == b"old"


def test_png_output_refused_before_the_reconstruction_in_a_shell(nifti_ct, tmp_path):
    done = run_cli("reconstruct", nifti_ct, tmp_path / "out" / "x.png")
    assert "unsupported output type" in one_error_line(done)  # one line: no progress bar ran
    assert not (tmp_path / "out").exists()


def test_output_check_sees_a_read_only_file_system(tmp_path):
    if not Path("/proc/self").is_dir():
        pytest.skip("needs /proc (Linux)")
    with pytest.raises(VolumeWriteError, match="cannot write in /proc"):
        check_output_path("/proc/recon.nii.gz")  # refused even for root, which os.access would let pass
    with pytest.raises(VolumeWriteError, match="is a folder"):
        check_output_path(tmp_path, kind="file")
    with pytest.raises(VolumeWriteError, match="not a folder"):
        (tmp_path / "f").write_text("x")
        check_output_path(tmp_path / "f", kind="folder")
    assert check_output_path(tmp_path / "new" / "deeper" / "r.nii.gz") == tmp_path / "new" / "deeper" / "r.nii.gz"
    assert not (tmp_path / "new").exists()  # checking creates nothing


# ------------------------------------------------ 3. never into a DICOM input
@pytest.fixture()
def dicom_copy(dicom_dir, tmp_path) -> Path:
    folder = tmp_path / "DICOMDIR"
    shutil.copytree(dicom_dir, folder)
    return folder


def test_reconstruct_refuses_to_write_into_the_dicom_folder(dicom_copy):
    before = sorted(p.name for p in dicom_copy.iterdir())
    line = one_error_line(run_cli("reconstruct", dicom_copy, dicom_copy / "recon.nii.gz"))
    assert "DICOM input folder" in line
    line = one_error_line(run_cli("reconstruct", dicom_copy, dicom_copy / "sub" / "recon.nii.gz"))
    assert "DICOM input folder" in line
    assert sorted(p.name for p in dicom_copy.iterdir()) == before


@pytest.mark.parametrize("args", [
    ["sparse", "simulate", "{d}", "{d}/proj", "--views", "6"],
    ["latents", "export", "{d}", "{d}/latents"],
    ["reconstruct", "{d}", "{o}/r.nii.gz", "--difference", "{d}/diff.nii.gz"],
])
def test_no_command_writes_into_a_dicom_input(args, dicom_copy, trapped, tmp_path, capsys):
    argv = [a.replace("{d}", str(dicom_copy)).replace("{o}", str(tmp_path / "o")) for a in args]
    assert main(argv) == 2
    assert "DICOM input folder" in capsys.readouterr().err


def test_write_volume_refuses_a_protected_dicom_folder(dicom_copy, nifti_ct):
    with pytest.raises(VolumeWriteError, match="DICOM input folder"):
        write_volume(read_volume(nifti_ct), dicom_copy / "x.nii.gz", protect=(dicom_copy,))
    assert not (dicom_copy / "x.nii.gz").exists()


# --------------------------------------- 4. unknown hub id or folder: one line
def test_unknown_hub_id_offline_is_one_line(nifti_ct, tmp_path):
    done = run_cli("reconstruct", nifti_ct, tmp_path / "o.nii.gz", "--vae", "nonexistent-org/nonexistent-vae",
                   env={"HF_HUB_OFFLINE": "1"})
    line = one_error_line(done)
    assert "nonexistent-org/nonexistent-vae" in line and "HF_HUB_OFFLINE" in line and "local hub cache" in line


def test_unreachable_hub_is_one_line_naming_hf_endpoint(nifti_ct, tmp_path):
    done = run_cli("reconstruct", nifti_ct, tmp_path / "o.nii.gz", "--vae", "nonexistent-org/nonexistent-vae",
                   env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"})
    line = one_error_line(done)  # no "Retrying in 1s [Retry 1/5]" lines, no deprecation warning
    assert "cannot be reached" in line and "http://127.0.0.1:9" in line and "HF_ENDPOINT" in line


@pytest.mark.parametrize("spec, message", [
    ("./no_such_vae_folder", "no such folder"),
    ("{empty}", "has no vae/config.json"),
])
def test_unknown_vae_folder_is_one_line(spec, message, nifti_ct, tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    argv = ["reconstruct", str(nifti_ct), "o.nii.gz", "--vae", spec.replace("{empty}", str(tmp_path / "empty")),
            "--subfolder", "vae"]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and message in err[0]


# -------------------------- 5 + 6. sparse evaluate: quiet dependencies, visible phases
@pytest.mark.slow
def test_sparse_evaluate_shows_each_phase_and_no_dependency_warnings(nifti_ct, tmp_path):
    preset = GEO.save(tmp_path / "geometry.json")
    done = run_cli("sparse", "evaluate", nifti_ct, "--views", "4", "--methods", "fdk,sart", "--iterations", "1",
                   "--preset", preset, "--no-noise")
    assert done.returncode == 0, done.stderr[-3000:]
    err = done.stderr.replace("\r", "\n")
    assert "views simulated" in err
    assert "steps (fdk, 4 views, run 1/2)" in err and "iterations (sart, 4 views, run 2/2)" in err, err[-3000:]
    for noise in ("SwigPy", "swigvarlink", "__module__ attribute", "DeprecationWarning", "FutureWarning"):
        assert noise not in err, err[-3000:]


def test_cli_shows_only_its_own_warnings(monkeypatch):
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)
    monkeypatch.setattr(sys, "warnoptions", [])
    with warnings.catch_warnings(record=True) as caught:
        show_only_own_warnings()
        warnings.warn_explicit("builtin type SwigPyPacked has no __module__ attribute", DeprecationWarning,
                               "<frozen importlib._bootstrap>", 241, module="importlib._bootstrap")
        warnings.warn_explicit("old argument", FutureWarning, "x.py", 1, module="diffusers.models")
        warnings.warn_explicit("a library's note", UserWarning, "y.py", 1, module="monai.utils")
        warnings.warn_explicit("2 DICOM series found", CTFoundationWarning, "z.py", 1, module="SimpleITK")
        warnings.warn_explicit("FDK: Parker weights incomplete", UserWarning, "fdk.py", 1,
                               module="napari_ctfoundation.engine.sparse.methods.fdk")
    assert [str(w.message) for w in caught] == ["2 DICOM series found", "FDK: Parker weights incomplete"]
    assert warnings.formatwarning("m", UserWarning, "f.py", 1) == "warning: m\n"


def test_developer_warning_flags_still_win(monkeypatch):
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)
    monkeypatch.setattr(sys, "warnoptions", ["default"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        show_only_own_warnings()
        warnings.warn_explicit("dep", DeprecationWarning, "x.py", 1, module="itk.support")
    assert [str(w.message) for w in caught] == ["dep"]


@pytest.mark.slow  # loads itk (shared with the other sparse tests in one session)
def test_evaluate_progress_names_each_phase(nifti_ct):
    from napari_ctfoundation.engine.sparse.pipeline import evaluate_ct
    from napari_ctfoundation.engine.sparse.simulate import NoiseModel

    calls = []
    evaluate_ct(read_volume(nifti_ct), GEO, [4], ["fdk"], noise=NoiseModel(enabled=False),
                progress=lambda done, total, unit: calls.append((done, total, unit)))
    units = [unit for _, _, unit in calls]
    assert units[0] == "views simulated" and "steps (fdk, 4 views, run 1/1)" in units
    done, total, _ = calls[-1]
    assert done == total


# ------------------------------- 8. self-explaining sidecar, README up to date
@pytest.mark.slow
def test_gen_sample_sidecar_names_the_findings(nifti_organs, tmp_path):
    organs = read_labels(nifti_organs)
    organs.array = organs.array[:8, 20:52, 40:72]  # a small box keeps the sampling short; the origin is unchanged
    write_volume(organs, tmp_path / "organs.nii.gz")
    out = tmp_path / "gen.nii.gz"
    done = run_cli("gen", "sample", "demo", out, "--organs", tmp_path / "organs.nii.gz", "--steps", "2",
                   "--report", "Centrilobular emphysema. No pleural effusion.", "--device", "cpu")
    assert done.returncode == 0, done.stderr[-3000:]
    findings = json.loads((tmp_path / "gen.json").read_text())["findings"]
    assert isinstance(findings, dict) and len(findings) == 18
    assert findings["emphysema"] == 1 and findings["pleural effusion"] == -1 and findings["cardiomegaly"] == 0


def test_readme_info_example_is_what_info_prints():
    readme = (REPO / "README.md").read_text()
    block = re.search(r"\$ ctfoundation info (\S+)\n(.*?)\n\$ ", readme, re.S)
    assert block, "README lost its `ctfoundation info` example"
    done = run_cli("info", block.group(1), cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == block.group(2).strip().splitlines()


# --------------------------------------------- 12. the reader claims only ours
def _readers_for(path) -> list:
    from npe2 import PluginManager, PluginManifest

    pm = PluginManager()
    pm.register(PluginManifest.from_file(MANIFEST))
    return [r.command for r in pm.iter_compatible_readers([str(path)])]


@pytest.mark.parametrize("name", ["photo.png", "table.csv", "stack.tif", "stack.tiff", "notes.txt", "image.jpg"])
def test_reader_not_offered_for_other_files(name, tmp_path):
    path = tmp_path / name
    path.write_bytes(b"x")
    assert _readers_for(path) == []


@pytest.mark.parametrize("name", ["ct.nii.gz", "CT.NII.GZ", "ct.nii", "ct.nrrd", "ct.mha", "ct.mhd", "slice.dcm"])
def test_reader_offered_for_ct_files_and_folders(name, tmp_path, dicom_dir):
    assert _readers_for(tmp_path / name) == ["napari-ctfoundation.get_reader"]
    assert _readers_for(dicom_dir) == ["napari-ctfoundation.get_reader"]


def test_readme_tells_how_to_open_with_the_plugin():
    assert 'viewer.open(' in (REPO / "README.md").read_text()
    assert 'plugin="napari-ctfoundation"' in (REPO / "README.md").read_text()


# ------------------------------------------ 14 + 15. the wheel and its metadata
@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel .`` of a copy of the source tree (the checkout stays clean)."""
    src = tmp_path_factory.mktemp("src") / "napari-ctfoundation"
    skip = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", "tests", "bench",
                                  "out", ".pytest_cache", ".benchmarks")
    shutil.copytree(REPO, src, ignore=skip, symlinks=True)
    dist = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
                           "-w", str(dist), "-q"], cwd=src, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    (whl,) = dist.glob("*.whl")
    return whl


@pytest.mark.slow
def test_wheel_carries_the_samples_and_they_open(wheel, tmp_path):
    names = zipfile.ZipFile(wheel).namelist()
    for item in napari_io.SAMPLE_FILES:
        assert any(n.startswith(f"napari_ctfoundation/data/samples/{item}") for n in names), item
    assert sum(n.startswith("napari_ctfoundation/data/samples/ct_dicom_series/dicom/") for n in names) == 20
    assert "napari_ctfoundation/data/samples/LICENSE-Apache-2.0.txt" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("from napari_ctfoundation import napari_io as io; print(io.sample_data_dir()); "
            "layers = io.sample_abdomen_3mm() + io.sample_dicom_series(); "
            "print([kind for *_, kind in layers], [d.shape for d, *_ in layers])")
    env = {k: v for k, v in os.environ.items() if k != "CTFOUNDATION_SAMPLE_DATA"}
    env["PYTHONPATH"] = str(site)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = done.stdout.strip().splitlines()[-2:]
    assert Path(first) == site / "napari_ctfoundation" / "data" / "samples"  # the wheel's copy, not the checkout
    assert second.startswith("['image', 'labels', 'image', 'labels']")


@pytest.mark.slow
def test_wheel_metadata_for_an_index_and_the_napari_hub(wheel):
    with zipfile.ZipFile(wheel) as z:
        meta_name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(z.read(meta_name).decode())
        licences = [n for n in z.namelist() if ".dist-info/licenses/" in n]
    assert meta["License-Expression"] == "Apache-2.0 AND MIT"
    assert any(n.endswith("licenses/LICENSE") for n in licences)
    classifiers = meta.get_all("Classifier")
    assert "Framework :: napari" in classifiers and any(c.startswith("Operating System ::") for c in classifiers)
    assert {"Programming Language :: Python :: 3.10", "Programming Language :: Python :: 3.11"} <= set(classifiers)
    assert not any(c.startswith("License ::") for c in classifiers)  # PEP 639: the expression replaces them


def test_top_level_licence_is_apache():
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text


def test_readme_lists_the_gui_test_apt_packages_and_torch_advice():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    apt = re.search(r"--no-install-recommends \\\n(.*?)>/dev/null", ci, re.S).group(1)
    packages = apt.replace("\\", " ").split()
    assert packages and all(re.search(rf"\b{re.escape(p)}\b", readme) for p in packages), packages
    assert "download.pytorch.org/whl/cpu" in readme and "CUDA" in readme
