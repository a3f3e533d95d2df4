"""DRR simulation with the paper's noise model, and the projection folder format.

Line integrals come from itk-rtk's Joseph forward projector applied to the
normalised [0, 1] grid volume. The noise model (stated in the paper, in no
public code): the normalised value is turned into a linear attenuation
coefficient (``attenuation_per_mm`` per unit, so water at 0.5 is about
0.02 / mm), the detected photon count is Poisson with mean
``photons * exp(-mu * L)`` (quantum noise), Gaussian electronic noise of
``electronic_sigma`` counts is added, and the counts go back to line
integrals ``-ln(count / photons) / attenuation_per_mm``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

from ..errors import ConfigError, VolumeReadError
from ..progress import CancelCheck, ProgressCallback, Tracker
from ..volume import Volume
from .geometry import ConeBeamGeometry

PROJECTIONS_FILE = "projections.mha"
META_FILE = "sparse.json"
RTK_GEOMETRY_FILE = "geometry_rtk.xml"


@dataclass(frozen=True)
class NoiseModel:
    """Poisson quantum noise then Gaussian electronic noise (``enabled=False``: exact DRRs).

    ``photons`` incident per detector pixel, ``electronic_sigma`` in counts,
    ``attenuation_per_mm`` of normalised value 1. Raises
    :class:`ConfigError` for non-positive photons or attenuation, or a
    negative sigma.
    """

    enabled: bool = True
    photons: float = 1e5  # incident photons per detector pixel (I0)
    electronic_sigma: float = 10.0  # electronic noise, std in counts
    attenuation_per_mm: float = 0.04  # mu (1/mm) of normalised value 1

    def __post_init__(self) -> None:
        if self.enabled and not self.photons > 0:
            raise ConfigError(f"--photons {self.photons}: the incident photon count must be positive")
        if self.electronic_sigma < 0:
            raise ConfigError(f"electronic noise sigma {self.electronic_sigma} must be >= 0")
        if not self.attenuation_per_mm > 0:
            raise ConfigError(f"attenuation_per_mm {self.attenuation_per_mm} must be positive")

    def apply(self, line_integrals: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not self.enabled:
            return line_integrals.astype(np.float32, copy=True)
        mean = self.photons * np.exp(-self.attenuation_per_mm * np.clip(line_integrals, 0, None))
        counts = rng.poisson(mean).astype(np.float64)
        counts += rng.normal(0.0, self.electronic_sigma, size=counts.shape)
        # A pixel cannot read below one photon: log of <= 0 is undefined.
        counts = np.clip(counts, 1.0, None)
        return (-np.log(counts / self.photons) / self.attenuation_per_mm).astype(np.float32)


@dataclass
class ProjectionSet:
    """Projections of one CT with everything needed to reconstruct it.

    ``projections`` ``(views, v, u)`` float32 line integrals (mm times the
    normalised attenuation), ``angles`` in degrees, ``view_indices`` into
    the geometry's candidates, the ``geometry``, and ``grid`` (the grid
    volume's geometry in the CT's LPS world, so reconstructions land where
    the CT was). ``save(folder)`` / ``ProjectionSet.load(folder)`` keep it
    on disk (MHA + JSON); ``subset(indices)`` picks views.
    """

    projections: np.ndarray  # (views, v, u) line integrals, float32
    angles: np.ndarray  # degrees, one per view
    view_indices: np.ndarray  # indices into the geometry's candidates
    geometry: ConeBeamGeometry
    grid: Dict[str, Any]  # Volume.geometry_dict() of the grid in the CT's world
    noise: NoiseModel = field(default_factory=NoiseModel)
    seed: Optional[int] = None
    source: str = ""

    @property
    def n_views(self) -> int:
        return int(self.projections.shape[0])

    def grid_volume(self, array: np.ndarray, **metadata: Any) -> Volume:
        return Volume.from_geometry_dict(array, self.grid, **metadata)

    def subset(self, indices: np.ndarray) -> "ProjectionSet":
        idx = np.asarray(indices, dtype=int)
        return ProjectionSet(self.projections[idx], self.angles[idx], self.view_indices[idx],
                             self.geometry, self.grid, self.noise, self.seed, self.source)

    def meta(self) -> Dict[str, Any]:
        return {
            "format": "ctfoundation-sparse-projections/1",
            "geometry": self.geometry.to_dict(),
            "angles_deg": [float(a) for a in self.angles],
            "view_indices": [int(i) for i in self.view_indices],
            "grid": self.grid,
            "noise": asdict(self.noise),
            "seed": self.seed,
            "source": self.source,
            "layout": "projections.mha: [view, v, u] line integrals (mm x normalised value)",
        }

    def save(self, folder: Union[str, Path]) -> Path:
        import SimpleITK as sitk

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        image = sitk.GetImageFromArray(self.projections.astype(np.float32))
        image.SetSpacing((*self.geometry.detector_pitch, 1.0))
        image.SetOrigin((*self.geometry.detector_origin(), 0.0))
        from ..atomic import atomic_path, atomic_write_json

        with atomic_path(folder / PROJECTIONS_FILE) as tmp:
            sitk.WriteImage(image, str(tmp))
        atomic_write_json(folder / META_FILE, self.meta())
        with atomic_path(folder / RTK_GEOMETRY_FILE) as tmp:
            _write_rtk_xml(self, tmp)
        return folder

    @classmethod
    def load(cls, folder: Union[str, Path]) -> "ProjectionSet":
        import SimpleITK as sitk

        folder = Path(folder)
        meta_path, proj_path = folder / META_FILE, folder / PROJECTIONS_FILE
        if not meta_path.is_file() or not proj_path.is_file():
            raise VolumeReadError(
                f"{folder}: not a projection folder (needs {META_FILE} and {PROJECTIONS_FILE}; "
                "make one with `ctfoundation sparse simulate`)"
            )
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            projections = sitk.GetArrayFromImage(sitk.ReadImage(str(proj_path))).astype(np.float32)
        except Exception as exc:  # noqa: BLE001 - any read problem is the file's
            raise VolumeReadError(f"{folder}: cannot read projections ({exc})") from None
        geometry = ConeBeamGeometry.from_dict(meta["geometry"])
        angles = np.asarray(meta["angles_deg"], float)
        nu, nv = geometry.detector_pixels
        if projections.shape != (len(angles), nv, nu):
            raise VolumeReadError(
                f"{proj_path}: shape {projections.shape} does not match {len(angles)} views of "
                f"{nv}x{nu} pixels in {meta_path}"
            )
        return cls(projections, angles, np.asarray(meta["view_indices"], int), geometry, meta["grid"],
                   NoiseModel(**meta["noise"]), meta.get("seed"), meta.get("source", ""))


def _write_rtk_xml(ps: ProjectionSet, path: Path) -> None:
    """RTK's own geometry file, so rtkfdk & co. can read the folder too."""
    try:
        from itk import RTK as rtk

        from .rtk import rtk_geometry

        geo = rtk_geometry(ps.angles, ps.geometry)  # keep a reference: the writer does not own it
        writer = rtk.ThreeDCircularProjectionGeometryXMLFileWriter.New()
        writer.SetFilename(str(path))
        writer.SetObject(geo)
        writer.WriteFile()
    except Exception:  # noqa: BLE001 - the JSON is the authoritative record
        pass


def simulate_projections(
    grid_volume: Volume,
    geometry: ConeBeamGeometry,
    view_indices: np.ndarray,
    *,
    noise: NoiseModel = NoiseModel(),
    seed: Optional[int] = None,
    source: str = "",
    chunk: int = 8,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
) -> ProjectionSet:
    """DRRs of a normalised grid volume (from :func:`.preprocess.to_grid`) at the given candidates.

    Raises :class:`ConfigError` when the grid volume does not match
    ``geometry.grid_size`` or a view index is outside the candidates.
    """
    from .rtk import forward_project

    n = geometry.grid_size
    if grid_volume.shape != (n, n, n):
        raise ConfigError(f"grid volume shape {grid_volume.shape} does not match the geometry grid {n}^3")
    view_indices = np.asarray(view_indices, dtype=int)
    if view_indices.size < 1 or view_indices.min() < 0 or view_indices.max() >= geometry.n_available:
        raise ConfigError(f"view indices must lie in [0, {geometry.n_available}), got {view_indices.tolist()}")
    angles = geometry.candidate_angles[view_indices]
    rng = np.random.default_rng(seed)
    tracker = Tracker(len(angles), "views", progress, cancel)
    out = []
    for start in range(0, len(angles), chunk):
        sub = angles[start:start + chunk]
        out.append(noise.apply(forward_project(grid_volume.array, sub, geometry), rng))
        tracker.advance(len(sub))
    return ProjectionSet(np.concatenate(out, axis=0), angles, view_indices, geometry,
                         grid_volume.geometry_dict(), noise, seed, source)
