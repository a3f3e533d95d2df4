"""Cone-beam geometry config: JSON-serialisable, with presets and checks.

The geometry follows RTK's circular-trajectory convention (same as TIGRE's
for a flat detector): source at ``sod`` mm from the isocentre, detector at
``sdd`` mm from the source, gantry rotation about RTK's y axis. The
projection matrix of a view maps RTK world coordinates (mm) to detector
coordinates (mm); :func:`projection_matrices` reproduces RTK's
``ThreeDCircularProjectionGeometry.GetMatrix`` (a test checks them against
itk-rtk) so the PyTorch back-projection in DiCE uses exactly the geometry
of the simulator.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import ConfigError, GeometryError


@dataclass(frozen=True)
class ConeBeamGeometry:
    """Source/detector distances, detector, angles and reconstruction grid.

    Distances in mm (``sod`` source-isocentre, ``sdd`` source-detector),
    ``detector_pixels`` ``(u, v)`` with ``detector_pitch`` mm, candidate
    view angles in degrees (``n_candidates`` over ``angle_range``, or
    explicit ``angles``), and the reconstruction grid: a cube of
    ``grid_size`` voxels of ``grid_spacing`` mm, HU ``window`` mapped to
    [0, 1]. Ready-made ones are in ``GEOMETRY_PRESETS`` (``deepsparse``,
    ``deepsparse-128``, ``deepsparse-64``, ``knee``, ``knee-64``);
    ``scaled(k)`` keeps the physics on a k-times coarser grid and detector.
    Raises :class:`ConfigError` naming the field for inconsistent values.
    """

    name: str = "custom"
    sod: float = 800.0  # source to isocentre (DSO), mm
    sdd: float = 1200.0  # source to detector (DSD), mm
    detector_pixels: Tuple[int, int] = (256, 256)  # (u, v) = (columns, rows)
    detector_pitch: Tuple[float, float] = (2.4, 2.4)  # mm
    detector_offset: Tuple[float, float] = (0.0, 0.0)  # detector centre shift in its plane (u, v), mm
    angle_range: float = 180.0  # degrees covered by the candidate set
    n_candidates: int = 200  # candidate projections over the range
    start_angle: float = 0.0
    angles: Optional[Tuple[float, ...]] = None  # explicit candidate angles (deg), overrides range/count
    grid_size: int = 256  # reconstruction grid, a cube
    grid_spacing: float = 1.6  # mm
    window: Tuple[float, float] = (-1000.0, 1000.0)  # HU clipped and scaled to [0, 1]

    def __post_init__(self) -> None:
        object.__setattr__(self, "detector_pixels", tuple(int(v) for v in self.detector_pixels))
        object.__setattr__(self, "detector_pitch", tuple(float(v) for v in self.detector_pitch))
        object.__setattr__(self, "detector_offset", tuple(float(v) for v in self.detector_offset))
        object.__setattr__(self, "window", tuple(float(v) for v in self.window))
        if self.angles is not None:
            object.__setattr__(self, "angles", tuple(float(a) for a in self.angles))
        self.validate()

    # ------------------------------------------------------------ checks
    def validate(self) -> None:
        def bad(option: str, problem: str) -> ConfigError:
            return ConfigError(f"geometry {self.name!r}: {option} {problem}")

        if not (self.sod > 0 and self.sdd > self.sod):
            raise bad("sod/sdd", f"need 0 < sod < sdd, got sod={self.sod}, sdd={self.sdd}")
        if len(self.detector_pixels) != 2 or min(self.detector_pixels) < 2:
            raise bad("detector_pixels", f"must be two counts >= 2, got {self.detector_pixels}")
        if len(self.detector_pitch) != 2 or min(self.detector_pitch) <= 0:
            raise bad("detector_pitch", f"must be two positive mm values, got {self.detector_pitch}")
        if self.angles is None:
            if self.n_candidates < 1:
                raise bad("n_candidates", f"must be >= 1, got {self.n_candidates}")
            if not 0 < self.angle_range <= 360:
                raise bad("angle_range", f"must be in (0, 360] degrees, got {self.angle_range}")
        elif len(self.angles) < 1:
            raise bad("angles", "is an empty list")
        if not 8 <= self.grid_size <= 512:
            raise bad("grid_size", f"must be 8 to 512 voxels, got {self.grid_size}")
        # Bounds far above real scanners: a damaged or hostile geometry must not allocate terabytes.
        if max(self.detector_pixels) > 16384:
            raise bad("detector_pixels", f"must be at most 16384 per side, got {self.detector_pixels}")
        if self.angles is None and self.n_candidates > 10_000:
            raise bad("n_candidates", f"must be at most 10000, got {self.n_candidates}")
        if self.grid_spacing <= 0:
            raise bad("grid_spacing", f"must be positive, got {self.grid_spacing}")
        if not self.window[0] < self.window[1]:
            raise bad("window", f"needs LO < HI, got {self.window}")
        half_diag = self.grid_extent / 2 * np.sqrt(2)
        if half_diag >= self.sod:
            raise GeometryError(
                f"geometry {self.name!r}: the source (sod={self.sod} mm) passes inside the "
                f"reconstruction grid (half diagonal {half_diag:.0f} mm); increase sod or shrink the grid"
            )
        coverage = self.detector_coverage()
        if coverage <= 0:
            raise GeometryError(
                f"geometry {self.name!r}: the detector ({self.detector_pixels} px at "
                f"{self.detector_pitch} mm) misses the reconstruction grid in at least one view; "
                "check detector size, pitch, offset and distances"
            )

    # ---------------------------------------------------------- derived
    @property
    def grid_extent(self) -> float:
        return self.grid_size * self.grid_spacing

    @property
    def candidate_angles(self) -> np.ndarray:
        """Candidate gantry angles in degrees."""
        if self.angles is not None:
            return np.asarray(self.angles, dtype=float)
        return self.start_angle + np.arange(self.n_candidates) * (self.angle_range / self.n_candidates)

    @property
    def n_available(self) -> int:
        return len(self.candidate_angles)

    @property
    def covered_range(self) -> float:
        """Angular range the candidates span (+ one step), for short-scan checks."""
        a = np.sort(self.candidate_angles % 360.0)
        if len(a) < 2:
            return 0.0
        gaps = np.diff(np.concatenate([a, a[:1] + 360.0]))
        return float(360.0 - gaps.max() + np.median(gaps))

    def detector_origin(self) -> Tuple[float, float]:
        """Physical (u, v) of detector pixel (0, 0): centred, then shifted by ``detector_offset``."""
        return tuple(-(n - 1) / 2.0 * p + o for n, p, o in  # type: ignore[return-value]
                     zip(self.detector_pixels, self.detector_pitch, self.detector_offset))

    def grid_origin(self) -> float:
        """Physical coordinate of voxel 0 along each grid axis (grid centred at 0)."""
        return -(self.grid_size - 1) / 2.0 * self.grid_spacing

    def select_views(self, n_views: int) -> np.ndarray:
        """Indices of ``n_views`` candidates spread uniformly over the candidate set."""
        n_views = int(n_views)
        if n_views < 1:
            raise ConfigError(f"--views {n_views}: need at least 1 view")
        if n_views > self.n_available:
            raise ConfigError(
                f"--views {n_views}: geometry {self.name!r} has only {self.n_available} candidate projections"
            )
        return np.unique(np.floor(np.arange(n_views) * self.n_available / n_views + 1e-9).astype(int))

    def detector_coverage(self) -> float:
        """Smallest fraction (over candidate views) of the grid's projected box on the detector.

        1.0: the whole grid projects inside the detector in every view;
        0.0: in some view nothing of the grid lands on the detector.
        """
        half = self.grid_extent / 2.0
        corners = np.array([[x, y, z] for x in (-half, half) for y in (-half, half) for z in (-half, half)])
        uv = project_points(corners, self.candidate_angles, self)  # (V, 8, 2) in pixels
        worst = 1.0
        for view in uv:
            lo, hi = view.min(axis=0), view.max(axis=0)
            size = hi - lo
            inter_lo = np.maximum(lo, -0.5)
            inter_hi = np.minimum(hi, np.array(self.detector_pixels) - 0.5)
            frac = np.prod(np.clip(inter_hi - inter_lo, 0, None) / np.maximum(size, 1e-9))
            worst = min(worst, float(frac))
        return worst

    def scaled(self, factor: int, name: Optional[str] = None) -> "ConeBeamGeometry":
        """Same physical geometry on a grid and detector ``factor`` times coarser."""
        factor = int(factor)
        if factor < 1 or self.grid_size % factor or any(n % factor for n in self.detector_pixels):
            raise ConfigError(f"cannot scale geometry {self.name!r} by {factor}")
        return replace(
            self,
            name=name or f"{self.name}-{self.grid_size // factor}",
            grid_size=self.grid_size // factor,
            grid_spacing=self.grid_spacing * factor,
            detector_pixels=tuple(n // factor for n in self.detector_pixels),
            detector_pitch=tuple(p * factor for p in self.detector_pitch),
        )

    # ------------------------------------------------------------- JSON
    def to_dict(self) -> Dict:
        d = asdict(self)
        d["detector_pixels"] = list(self.detector_pixels)
        d["detector_pitch"] = list(self.detector_pitch)
        d["detector_offset"] = list(self.detector_offset)
        d["window"] = list(self.window)
        d["angles"] = None if self.angles is None else list(self.angles)
        return d

    @classmethod
    def from_dict(cls, data: Dict) -> "ConeBeamGeometry":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"geometry config: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**data)

    def save(self, path: Union[str, Path]) -> Path:
        from ..atomic import atomic_write_json

        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Union[str, Path]) -> "ConeBeamGeometry":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read geometry JSON ({exc})") from None
        return cls.from_dict(data)


# ----------------------------------------------------------- projection math
def grid_to_rtk(points_xyz: np.ndarray) -> np.ndarray:
    """Grid-frame (x, y, z) mm -> RTK world (x, y, z): patient z is RTK's rotation axis y.

    The grid array ``[z, y, x]`` is handed to RTK transposed to ``[y, z, x]``
    (RTK index order k, j, i), so RTK x = x, RTK y = z, RTK z = y.
    """
    p = np.asarray(points_xyz, dtype=float)
    return p[..., [0, 2, 1]]


def projection_matrices(angles_deg: Sequence[float], geometry: ConeBeamGeometry) -> np.ndarray:
    """RTK 3x4 projection matrices (RTK world mm -> detector mm), one per angle.

    ``M = Magnification(sdd, sod) @ R_y(-angle)`` for a centred flat detector
    without offsets, as RTK's ThreeDCircularProjectionGeometry builds it.
    """
    theta = np.deg2rad(np.asarray(angles_deg, dtype=float))
    c, s = np.cos(theta), np.sin(theta)
    m = np.zeros((len(theta), 3, 4))
    m[:, 0, 0] = -geometry.sdd * c
    m[:, 0, 2] = geometry.sdd * s
    m[:, 1, 1] = -geometry.sdd
    m[:, 2, 0] = s
    m[:, 2, 2] = c
    m[:, 2, 3] = -geometry.sod
    return m


def project_points(points_xyz: np.ndarray, angles_deg: Sequence[float], geometry: ConeBeamGeometry) -> np.ndarray:
    """Grid-frame points (N, 3) mm -> detector pixel indices (V, N, 2) as (u, v)."""
    pts = grid_to_rtk(np.asarray(points_xyz, dtype=float).reshape(-1, 3))
    homog = np.concatenate([pts, np.ones((len(pts), 1))], axis=1)
    m = projection_matrices(angles_deg, geometry)
    proj = np.einsum("vij,nj->vni", m, homog)
    uv_mm = proj[..., :2] / proj[..., 2:3]
    origin = np.array(geometry.detector_origin())
    return (uv_mm - origin) / np.array(geometry.detector_pitch)


_DEEPSPARSE = ConeBeamGeometry(name="deepsparse")
_KNEE = ConeBeamGeometry(
    name="knee", sod=1000.0, sdd=2000.0, detector_pitch=(2.0, 2.0), grid_spacing=0.8
)
PRESETS: Dict[str, ConeBeamGeometry] = {
    "deepsparse": _DEEPSPARSE,
    "knee": _KNEE,
    # Same physical geometry on coarser grids/detectors, for 2 CPU cores.
    "deepsparse-128": _DEEPSPARSE.scaled(2),
    "deepsparse-64": _DEEPSPARSE.scaled(4),
    "knee-64": _KNEE.scaled(4),
}


def get_preset(name_or_path: Union[str, Path, ConeBeamGeometry]) -> ConeBeamGeometry:
    """A preset by name, or a geometry JSON file."""
    if isinstance(name_or_path, ConeBeamGeometry):
        return name_or_path
    if str(name_or_path) in PRESETS:
        return PRESETS[str(name_or_path)]
    path = Path(name_or_path)
    if path.suffix == ".json" and path.is_file():
        return ConeBeamGeometry.load(path)
    raise ConfigError(
        f"--preset {name_or_path!r}: not a preset ({', '.join(PRESETS)}) nor a geometry .json file"
    )
