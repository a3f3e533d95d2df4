"""DiCE hyper-parameters: a JSON-serialisable dataclass, tied to a geometry."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Tuple

from ...errors import ConfigError
from ..geometry import ConeBeamGeometry, PRESETS


@dataclass
class DiCEConfig:
    """DiCE network sizes, tied to the cone-beam geometry it reconstructs for.

    ``DiCEConfig.paper(geometry)`` is the paper's size (about 7 M
    parameters), ``small()`` a CPU-sized one on the ``deepsparse-64`` grid,
    ``tiny(geometry)`` a seconds-per-step one for tests and examples. Saved
    as JSON with every checkpoint (``to_dict`` / ``from_dict``). Raises
    :class:`ConfigError` for a wrong number of encoder scales, a feature
    grid under 4, detector sizes not divisible by 8, or unknown keys.
    """

    geometry: Dict[str, Any] = field(default_factory=lambda: PRESETS["deepsparse"].to_dict())
    encoder_channels: Tuple[int, ...] = (16, 32, 64, 128)  # 4 scales, full res then /2 each
    feature_grid: int = 32  # voxels per side of the back-projection grid
    decoder_channels: int = 128
    decoder_convs: int = 2  # 3x3x3 convs per cross-scale fusion stage
    out_convs: int = 6  # 3x3x3 convs after the last fusion (paper size: ~7 M parameters)
    codebook_size: int = 512
    vq_decay: float = 0.99
    commitment: float = 0.25
    mlp_hidden: Tuple[int, ...] = (184, 128, 64, 16)
    mlp_skip_at: int = 1  # the point features are concatenated again before this layer
    denoise: bool = False  # finetune step 2 adds per-scale shallow 3D denoise layers
    dense_views: int = 24  # HyViP: 3D features from this many views
    chunk_points: int = 100_000

    def __post_init__(self) -> None:
        self.encoder_channels = tuple(int(c) for c in self.encoder_channels)
        self.mlp_hidden = tuple(int(c) for c in self.mlp_hidden)
        if len(self.encoder_channels) != 4:
            raise ConfigError(f"DiCE encoder_channels needs 4 scales, got {self.encoder_channels}")
        if self.feature_grid < 4:
            raise ConfigError(f"DiCE feature_grid must be >= 4, got {self.feature_grid}")
        self._check_bounds()
        g = self.geo
        if any(n % 8 for n in g.detector_pixels):
            raise ConfigError(f"DiCE needs detector sizes divisible by 8, got {g.detector_pixels}")

    # Far above any real network, far below sizes that would take hours or all memory just to build
    # (a damaged or hostile config.json must be refused, not obeyed).
    BOUNDS = {"feature_grid": 128, "decoder_channels": 8192, "decoder_convs": 64, "out_convs": 64,
              "codebook_size": 1 << 16, "mlp_skip_at": 64, "dense_views": 4096, "chunk_points": 1 << 27}

    def _check_bounds(self) -> None:
        for name, hi in self.BOUNDS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
                raise ConfigError(f"DiCE {name} must be a whole number in [0, {hi}], got {value!r}")
        for name, values, n_max in (("encoder_channels", self.encoder_channels, 4),
                                    ("mlp_hidden", self.mlp_hidden, 32)):
            if len(values) > n_max or any(not 1 <= v <= 8192 for v in values):
                raise ConfigError(f"DiCE {name} must be at most {n_max} sizes in [1, 8192], got {list(values)}")

    @property
    def geo(self) -> ConeBeamGeometry:
        return ConeBeamGeometry.from_dict(self.geometry)

    @property
    def point_channels(self) -> int:
        return self.decoder_channels + sum(self.encoder_channels)

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["encoder_channels"] = list(self.encoder_channels)
        d["mlp_hidden"] = list(self.mlp_hidden)
        return d

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "DiCEConfig":
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"DiCE config: unknown keys {unknown}")
        return cls(**data)

    @classmethod
    def paper(cls, geometry: ConeBeamGeometry = PRESETS["deepsparse"]) -> "DiCEConfig":
        """The paper's sizes (about 7 M parameters)."""
        return cls(geometry=geometry.to_dict())

    @classmethod
    def small(cls, geometry: ConeBeamGeometry = PRESETS["deepsparse-64"]) -> "DiCEConfig":
        """A CPU-sized network (16^3 feature grid, narrow channels)."""
        return cls(geometry=geometry.to_dict(), encoder_channels=(8, 16, 32, 64), feature_grid=16,
                   decoder_channels=32, decoder_convs=1, out_convs=2, codebook_size=512,
                   mlp_hidden=(96, 64, 32, 16), chunk_points=65536)

    @classmethod
    def tiny(cls, geometry: ConeBeamGeometry) -> "DiCEConfig":
        """For tests: seconds per step."""
        return cls(geometry=geometry.to_dict(), encoder_channels=(4, 4, 8, 8), feature_grid=8,
                   decoder_channels=8, decoder_convs=1, out_convs=1, codebook_size=32,
                   mlp_hidden=(16, 16, 8, 8), chunk_points=4096, dense_views=8)
