"""Sparse-view cone-beam CT (DeepSparse, REFERENCE section 3).

* :mod:`.geometry`   cone-beam geometry config, presets, projection matrices
* :mod:`.preprocess` CT -> normalised [0, 1] grid volume (resample, crop/pad, clip, scale)
* :mod:`.simulate`   DRRs with itk-rtk's Joseph projector + Poisson/Gaussian noise
* :mod:`.methods`    reconstruction registry: fdk, sart, dice (one file each)
* :mod:`.metrics`    PSNR and 3D SSIM on [0, 1] (data_range 1)
* :mod:`.dice`       the DiCE network (PyTorch); :mod:`.train` HyViP + finetuning

Coordinates: the reconstruction grid is a cube of ``grid_size`` voxels of
``grid_spacing`` mm centred on the isocentre. Its array is ``[z, y, x]`` in
display orientation (LPS); the rotation axis is the patient z axis, which is
RTK's y axis (see :func:`.geometry.grid_to_rtk`).
"""

from .geometry import ConeBeamGeometry, PRESETS, get_preset  # noqa: F401
