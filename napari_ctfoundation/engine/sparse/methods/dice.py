"""DiCE (DeepSparse) reconstruction from a trained checkpoint (default: the shipped one)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from ...progress import CancelCheck, ProgressCallback
from ...volume import Volume
from ..simulate import ProjectionSet
from . import METHODS

_CACHE: dict = {}


@METHODS.register("dice", "DiCE network of DeepSparse (PyTorch checkpoint)")
def dice(
    projections: ProjectionSet,
    *,
    checkpoint: Union[str, Path, None] = None,
    device: str = "auto",
    chunk: Optional[int] = None,
    grid: Optional[int] = None,
    query: str = "fast",
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCheck] = None,
) -> Volume:
    """DiCE on ``grid``^3 voxels over the trained grid's cube (default: the trained grid).

    ``query="fast"`` (coarse to fine, same decoder) or ``"dense"`` (every voxel).
    """
    from ...vae import resolve_device
    from ..dice.checkpoint import SHIPPED, check_geometry, dice_predict, load_dice
    from ..dice.predict import check_query_options, regrid

    check_query_options(grid, query)
    device = resolve_device(device)
    folder = Path(checkpoint) if checkpoint is not None else SHIPPED
    key = (str(folder.resolve()), device, (folder / "model.safetensors").stat().st_mtime
           if (folder / "model.safetensors").exists() else 0)
    model = _CACHE.get(key)
    if model is None:
        model = load_dice(folder, device)
        _CACHE.clear()
        _CACHE[key] = model
    check_geometry(model.config, projections.geometry, f"--checkpoint {folder}")
    out = dice_predict(model, projections.projections, projections.angles, device=device, chunk=chunk,
                       grid=grid, query=query, progress=progress, cancel=cancel)
    geo = projections.geometry
    placement = regrid(projections.grid, geo.grid_size, geo.grid_spacing, out.shape[0])
    return Volume.from_geometry_dict(out, placement, method="dice", checkpoint=str(folder),
                                     views=projections.n_views, query=query)
