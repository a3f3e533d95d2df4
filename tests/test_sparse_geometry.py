"""Cone-beam geometry: presets, JSON, RTK matrices, torch projection vs itk-rtk, bad input."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from napari_ctfoundation.engine.errors import ConfigError, GeometryError
from napari_ctfoundation.engine.sparse.geometry import (
    PRESETS,
    ConeBeamGeometry,
    get_preset,
    project_points,
    projection_matrices,
)

SMALL = PRESETS["deepsparse"].scaled(8, name="test-32")  # 32^3 grid at 12.8 mm, 32^2 detector


def test_presets_match_the_paper():
    g = PRESETS["deepsparse"]
    assert (g.sdd, g.sod, g.detector_pixels, g.detector_pitch) == (1200, 800, (256, 256), (2.4, 2.4))
    assert (g.grid_size, g.grid_spacing, g.angle_range, g.n_available) == (256, 1.6, 180, 200)
    k = PRESETS["knee"]
    assert (k.sdd, k.sod, k.detector_pitch[0], k.grid_spacing) == (2000, 1000, 2.0, 0.8)
    s = PRESETS["deepsparse-64"]
    assert s.grid_size == 64 and s.grid_extent == pytest.approx(g.grid_extent)


def test_geometry_json_round_trip(tmp_path):
    g = replace(SMALL, angles=(0.0, 45.0, 90.0), detector_offset=(3.0, -2.0))
    path = g.save(tmp_path / "g.json")
    assert get_preset(path) == g
    with pytest.raises(ConfigError, match="unknown keys"):
        ConeBeamGeometry.from_dict({**g.to_dict(), "bogus": 1})


def test_view_selection_errors():
    assert list(SMALL.select_views(6)) == [0, 33, 66, 100, 133, 166]
    with pytest.raises(ConfigError, match="at least 1 view"):
        SMALL.select_views(0)
    with pytest.raises(ConfigError, match="only 200 candidate"):
        SMALL.select_views(201)


def test_detector_missing_the_volume_is_an_error():
    with pytest.raises(GeometryError, match="misses the reconstruction grid"):
        replace(SMALL, detector_offset=(5000.0, 0.0))
    with pytest.raises(GeometryError, match="source"):
        replace(SMALL, sod=200.0, sdd=400.0)


def test_matrices_equal_itk_rtk():
    from itk import RTK as rtk
    import itk

    angles = [0.0, 17.3, 90.0, 179.1, 250.0]
    geo = rtk.ThreeDCircularProjectionGeometry.New()
    for a in angles:
        geo.AddProjection(SMALL.sod, SMALL.sdd, a, 0.0, 0.0)
    ours = projection_matrices(angles, SMALL)
    for i in range(len(angles)):
        np.testing.assert_allclose(ours[i], itk.array_from_matrix(geo.GetMatrix(i)), atol=1e-9)


def test_torch_projection_matches_itk_rtk_within_half_a_pixel():
    """DiCE's torch projection vs RTK: its matrices and a Joseph DRR of a point-like blob."""
    import torch

    from napari_ctfoundation.engine.sparse.dice.config import DiCEConfig
    from napari_ctfoundation.engine.sparse.dice.model import DiCE
    from napari_ctfoundation.engine.sparse.rtk import forward_project

    geometry = replace(SMALL, detector_offset=(4.0, -6.0))
    model = DiCE(DiCEConfig.tiny(geometry))
    angles = np.array([0.0, 33.0, 71.0, 128.0, 179.0])
    # A 2x2x2-voxel blob off centre; its centre is a voxel corner.
    n, sp = geometry.grid_size, geometry.grid_spacing
    vol = np.zeros((n, n, n), np.float32)
    k, j, i = 20, 11, 9
    vol[k - 1:k + 1, j - 1:j + 1, i - 1:i + 1] = 1.0
    centre = np.array([i - 0.5, j - 0.5, k - 0.5]) * sp + geometry.grid_origin()  # (x, y, z) mm
    pts = torch.tensor(centre[None, None], dtype=torch.float32)
    uv_torch = model.project(pts, model.matrices(torch.tensor(angles[None], dtype=torch.float32)))[0, :, 0].numpy()
    # 1) the RTK matrices themselves, through the projection image's origin and spacing
    from itk import RTK as rtk
    import itk

    geo = rtk.ThreeDCircularProjectionGeometry.New()
    for a in angles:
        geo.AddProjection(geometry.sod, geometry.sdd, float(a), 0.0, 0.0)
    rtk_point = np.array([centre[0], centre[2], centre[1], 1.0])  # grid frame -> RTK frame
    for v in range(len(angles)):
        h = itk.array_from_matrix(geo.GetMatrix(v)) @ rtk_point
        uv = (h[:2] / h[2] - np.array(geometry.detector_origin())) / np.array(geometry.detector_pitch)
        assert np.abs(uv - uv_torch[v]).max() < 0.5
    # 2) the centroid of the Joseph DRR of the blob
    proj = forward_project(vol, angles, geometry)
    vv, uu = np.mgrid[: proj.shape[1], : proj.shape[2]]
    for v in range(len(angles)):
        w = proj[v] / proj[v].sum()
        centroid = np.array([(w * uu).sum(), (w * vv).sum()])
        assert np.abs(centroid - uv_torch[v]).max() < 0.5, (v, centroid, uv_torch[v])
    assert np.allclose(project_points(centre[None], angles, geometry)[:, 0], uv_torch, atol=1e-3)
