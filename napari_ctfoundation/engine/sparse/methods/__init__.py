"""Reconstruction methods for sparse-view projections, one file per method.

Every method is ``method(projections: ProjectionSet, *, progress=None,
cancel=None, **options) -> Volume`` and returns the grid volume in the
normalised [0, 1] domain (clipped), placed in the CT's world coordinates.
"""

from __future__ import annotations

from ...registry import Registry

METHODS: Registry = Registry("sparse reconstruction method", __name__)


def reconstruct(projections, method: str = "fdk", **options):
    """Reconstruct a :class:`ProjectionSet` with a registered method: ``fdk``, ``sart`` or ``dice``.

    Returns the grid volume (``[z, y, x]``, ``grid_size`` cube of
    ``grid_spacing`` mm, values in the normalised [0, 1] domain, placed in
    the CT's LPS world). Options per method: ``fdk(hann_cut=0.0,
    short_scan=None)``; ``sart(iterations=20, relaxation=0.5)``;
    ``dice(checkpoint=None, device="auto", chunk=None)`` (``None`` = the
    shipped 64^3 checkpoint); all take ``progress=`` and ``cancel=``.
    Raises :class:`ConfigError` for an unknown method, a bad option value,
    or a DiCE checkpoint whose geometry differs from the projections'.
    """
    return METHODS.create(method, projections, **options)
