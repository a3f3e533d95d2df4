"""Reconstruction methods for sparse-view projections, one file per method.

Every method is ``method(projections: ProjectionSet, *, progress=None,
cancel=None, **options) -> Volume`` and returns the grid volume in the
normalised [0, 1] domain (clipped), placed in the CT's world coordinates.
"""

from __future__ import annotations

from ...registry import Registry

METHODS: Registry = Registry("sparse reconstruction method", __name__)


def reconstruct(projections, method: str = "fdk", **options):
    """Run a registered method by name."""
    return METHODS.create(method, projections, **options)
