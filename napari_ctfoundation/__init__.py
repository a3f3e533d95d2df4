"""napari-ctfoundation: foundation autoencoders, conditional generation and
sparse-view cone-beam CT for CT volumes, in napari and headless.

The public Python API is this package's top level::

    import napari_ctfoundation as ctf
    ct = ctf.read_volume("ct.nii.gz")
    res = ctf.reconstruct_volume(ct, vae="taef2", window=ctf.HUWindow.preset("lung"))
    print(res.metrics); ctf.write_volume(res.volume, "recon.nii.gz")

Conventions shared by every name: volumes are :class:`Volume` objects whose
``array`` is indexed ``[z, y, x]`` (float32 HU for CT, integer ids for label
maps); ``spacing`` and ``origin`` are ``(x, y, z)`` millimetres in LPS
(ITK); NIfTI files (RAS on disk) are converted on reading and writing.
Anything a user can get wrong raises a :class:`CTFoundationError` subclass
(:class:`VolumeReadError`, :class:`ConfigError`, ...) with a one-line
message. Long functions take ``progress=`` (``None``, ``"auto"`` for a tqdm
bar, or ``progress(done, total, unit)``) and ``cancel=`` (a callable that
returns True to stop with :class:`OperationCancelled`).

Importing this package is cheap: every name is loaded on first use (module
``__getattr__``), and torch, itk, diffusers and transformers are imported
inside the functions that need them. See ``docs/python_api.md``.
"""

from __future__ import annotations

import importlib as _importlib

__version__ = "0.1.0"

# public name -> "module[:attribute]" below this package (attribute defaults to the name).
# Grouped as in docs/python_api.md; tests/test_public_api.py pins this list.
_LAZY: dict[str, str] = {
    # volumes and I/O
    "Volume": "engine.volume",
    "read_volume": "engine.io",
    "read_labels": "engine.io",
    "read_dicom_series": "engine.io",
    "write_volume": "engine.io",
    "sample_data_dir": "napari_io",
    "organ_names": "engine.labels",
    "lesion_names": "engine.labels",
    # errors
    "CTFoundationError": "engine.errors",
    "VolumeReadError": "engine.errors",
    "VolumeWriteError": "engine.errors",
    "GeometryError": "engine.errors",
    "ConfigError": "engine.errors",
    "OperationCancelled": "engine.errors",
    # progress
    "TqdmProgress": "engine.progress",
    # windows and presets
    "HUWindow": "engine.window",
    "WINDOW_PRESETS": "engine.window:PRESETS",
    # VAEs
    "load_vae": "engine.vae.base",
    "FoundationVAE": "engine.vae.base",
    "VAE_BACKENDS": "engine.vae.base",
    "resolve_device": "engine.vae.base",
    # reconstruction and latents
    "reconstruct_volume": "engine.reconstruct",
    "ReconstructionResult": "engine.reconstruct",
    "compare_reconstruction": "engine.compare",
    "CompareResult": "engine.compare",
    "format_compare_table": "engine.compare",
    "encode_volume": "engine.latents",
    "decode_latents": "engine.latents",
    "save_latents": "engine.latents",
    "load_latents": "engine.latents",
    "LatentVolume": "engine.latents",
    # metrics
    "volume_metrics": "engine.metrics",
    "sparse_metrics": "engine.sparse.metrics",
    # sparse-view CBCT
    "ConeBeamGeometry": "engine.sparse.geometry",
    "GEOMETRY_PRESETS": "engine.sparse.geometry:PRESETS",
    "NoiseModel": "engine.sparse.simulate",
    "ProjectionSet": "engine.sparse.simulate",
    "simulate_sparse_views": "engine.sparse.pipeline:simulate_ct",
    "reconstruct_sparse_views": "engine.sparse.methods:reconstruct",
    "SPARSE_METHODS": "engine.sparse.methods:METHODS",
    "evaluate_sparse_views": "engine.sparse.pipeline:evaluate_ct",
    "DiCEConfig": "engine.sparse.dice.config",
    "load_dice": "engine.sparse.dice.checkpoint",
    "DiCETrainSettings": "engine.sparse.train:TrainSettings",
    "build_dice_cache": "engine.sparse.train:build_cache",
    "train_dice": "engine.sparse.train",
    # conditional generation
    "GenerationPipeline": "engine.generation.pipeline",
    "GenerationResult": "engine.generation.pipeline",
    "read_generation_manifest": "engine.generation.manifest:read_manifest",
    "build_generation_cache": "engine.generation.cache:build_cache",
    "GenerationTrainConfig": "engine.generation.train:TrainConfig",
    "train_generation": "engine.generation.train:train",
    "evaluate_generation": "engine.generation.evaluate:evaluate_pipeline",
    # dataset indexing (public CT layouts -> one manifest CSV)
    "index_dataset": "engine.dataset.index",
    "IndexResult": "engine.dataset.index",
    "format_index_summary": "engine.dataset.index:format_summary",
    "DATASET_LAYOUTS": "engine.dataset.base:LAYOUTS",
    "DatasetCase": "engine.dataset.manifest",
    "read_dataset_manifest": "engine.dataset.manifest",
    "write_dataset_manifest": "engine.dataset.manifest:write_manifest",
    "compare_dataset": "engine.compare_dataset",
    "DatasetComparison": "engine.compare_dataset",
    "format_dataset_table": "engine.compare_dataset",
    # batch workflows
    "Case": "engine.batch.dataset",
    "discover_cases": "engine.batch.dataset",
    "run_batch": "engine.batch.runner",
    "BatchSummary": "engine.batch.runner",
    "make_reconstruct_case": "engine.batch.reconstruct",
    "make_export_case": "engine.batch.latents",
    "export_nnunet": "engine.batch.nnunet",
    # segmentation
    "SegConfig": "engine.segmentation.model",
    "SegCase": "engine.segmentation.data",
    "load_seg_case": "engine.segmentation.data:load_case",
    "load_seg_dataset": "engine.segmentation.data:load_dataset",
    "train_segmenter": "engine.segmentation.train",
    "load_segmenter": "engine.segmentation.model:load_model",
    "evaluate_segmenter": "engine.segmentation.evaluate:evaluate_cases",
}

__all__: list[str] = list(_LAZY)


def __getattr__(name: str) -> object:
    """Load a public name on first use and keep it in the module namespace."""
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, _, attribute = target.partition(":")
    value = getattr(_importlib.import_module(f"{__name__}.{module_name}"), attribute or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
