"""Field-of-view padding (-2048, -3024 HU) counts as air in the sparse-view grid volume.

Training (the simulation cache), ``sparse simulate`` and ``sparse evaluate``
(the ground truth) all go through :func:`to_grid`, so checking it covers
both training and evaluation.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_ctfoundation.engine.sparse.geometry import ConeBeamGeometry
from napari_ctfoundation.engine.sparse.preprocess import Augment, to_grid
from napari_ctfoundation.engine.volume import Volume

# A coarse grid (4 mm voxels from a 1 mm CT) so the anti-alias blur is active, as on deepsparse-64.
GEOMETRY = ConeBeamGeometry(name="padding-test", detector_pixels=(32, 32), detector_pitch=(9.6, 9.6),
                            n_candidates=8, grid_size=24, grid_spacing=4.0)


def _scanner_like_ct(padding_hu: float) -> Volume:
    """Soft tissue (40 HU) whose edge the scanner's circular field of view cuts, padding outside it."""
    n = 96
    z, y, x = np.mgrid[:n, :n, :n].astype(np.float32) - (n - 1) / 2
    hu = np.full((n, n, n), 40.0, dtype=np.float32)
    hu[np.hypot(x, y) > 40] = padding_hu  # outside the reconstructed FOV disc, tissue cut off
    hu[np.abs(z) > 30] = -1000.0  # air above and below the body
    return Volume(array=hu, spacing=(1.0, 1.0, 1.0), origin=(-48.0, -48.0, -48.0))


@pytest.mark.parametrize("padding_hu", [-2048.0, -3024.0])
@pytest.mark.parametrize("augment", [None, Augment(rotation_deg=10.0, shift_mm=(3.0, -2.0, 1.0), zoom=1.2)])
def test_padding_is_air_in_the_grid_volume(padding_hu, augment):
    padded = _scanner_like_ct(padding_hu)
    as_air = Volume(array=np.maximum(padded.array, -1000.0), spacing=padded.spacing, origin=padded.origin)
    grid_padded = to_grid(padded, GEOMETRY, augment=augment)
    grid_air = to_grid(as_air, GEOMETRY, augment=augment)
    # The FOV edge blurs into neighbouring voxels: padding darker than air would pull them down.
    edge = (grid_air.array > 0.05) & (grid_air.array < 0.5)
    assert edge.any(), "the test volume must have blurred edge voxels at the FOV boundary"
    np.testing.assert_allclose(grid_padded.array, grid_air.array, atol=1e-5)
    assert grid_padded.array.min() >= 0.0
