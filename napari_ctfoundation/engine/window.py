"""HU windows: the presets radiologists use and the map to model ranges.

``contrast_limits = (level - width / 2, level + width / 2)``. The default
window for the foundation VAE is [-1000, 1000] HU, as in the reference code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

from .errors import ConfigError

# name: (width, level) in HU (REFERENCE section 4)
PRESETS: Dict[str, Tuple[float, float]] = {
    "ct": (2000.0, 0.0),  # [-1000, 1000]: the foundation-VAE default
    "soft_tissue": (400.0, 40.0),
    "abdomen": (350.0, 40.0),
    "lung": (1500.0, -600.0),
    "bone": (2500.0, 480.0),
    "brain": (80.0, 40.0),
    "liver": (150.0, 90.0),
}
DEFAULT_PRESET = "ct"


@dataclass(frozen=True)
class HUWindow:
    """A closed interval ``[lo, hi]`` of Hounsfield units, mapped linearly onto [0, 1].

    This is the range a VAE sees (everything outside is clipped) and the
    range metrics are measured in. The default [-1000, 1000] HU is the
    foundation-VAE default. ``HUWindow.preset("lung")`` gives a radiology
    preset (see ``PRESETS``: ct, soft_tissue, abdomen, lung, bone, brain,
    liver). Raises :class:`ConfigError` unless ``lo < hi`` and both are
    finite.
    """

    lo: float = -1000.0
    hi: float = 1000.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.lo) and np.isfinite(self.hi) and self.lo < self.hi):
            raise ConfigError(f"invalid HU window [{self.lo}, {self.hi}]: need LO < HI")

    @classmethod
    def preset(cls, name: str) -> "HUWindow":
        """The window of a named preset, e.g. ``HUWindow.preset("lung")`` = [-1350, 150] HU.

        Raises :class:`ConfigError` naming the known presets for an unknown name.
        """
        return cls.from_preset(name)

    @classmethod
    def from_preset(cls, name: str) -> "HUWindow":
        """Same as :meth:`preset` (the name the CLI and widgets use)."""
        try:
            width, level = PRESETS[name]
        except KeyError:
            raise ConfigError(
                f"unknown window preset {name!r}; known: {', '.join(PRESETS)}"
            ) from None
        return cls(level - width / 2, level + width / 2)

    @classmethod
    def from_level_width(cls, level: float, width: float) -> "HUWindow":
        """From a radiologist's level (centre) and width, both in HU."""
        return cls(level - width / 2, level + width / 2)

    @property
    def width(self) -> float:
        """``hi - lo`` in HU."""
        return self.hi - self.lo

    @property
    def contrast_limits(self) -> Tuple[float, float]:
        """``(lo, hi)``, ready for a napari image layer's ``contrast_limits``."""
        return (self.lo, self.hi)

    def to_unit(self, hu: np.ndarray) -> np.ndarray:
        """HU -> [0, 1], clipped to the window."""
        return np.clip((np.asarray(hu, dtype=np.float32) - self.lo) / self.width, 0.0, 1.0)

    def from_unit(self, unit: np.ndarray) -> np.ndarray:
        """[0, 1] -> HU (float32, no rounding)."""
        return (np.clip(unit, 0.0, 1.0) * self.width + self.lo).astype(np.float32)

    def as_list(self) -> list:
        """``[lo, hi]`` (JSON sidecars)."""
        return [self.lo, self.hi]
